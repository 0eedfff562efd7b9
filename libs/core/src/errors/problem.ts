/** RFC 9457 problem details for the REST API. `code` is stable and documented; `detail` is for humans. */
export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

export interface FieldError {
  field: string;
  message: string;
}

export class ValidationProblem extends Problem {
  constructor(errors: FieldError[], code = 'validation_failed') {
    super(422, code, 'Unprocessable Content', errors.map((e) => `${e.field}: ${e.message}`).join('; '), { errors });
  }
}

export class NotFoundProblem extends Problem {
  constructor(what: string) {
    super(404, 'not_found', 'Not Found', `${what} not found`);
  }
}

export class ForbiddenProblem extends Problem {
  constructor(detail: string, code = 'forbidden') {
    super(403, code, 'Forbidden', detail);
  }
}

export class UnauthorizedProblem extends Problem {
  /** `challenge`: the WWW-Authenticate value (Basic for agents, who authenticate as OAuth clients). */
  constructor(detail: string, readonly challenge = 'Bearer realm="procura"') {
    super(401, 'unauthenticated', 'Unauthorized', detail);
  }
}

export class ConflictProblem extends Problem {
  constructor(code: string, detail: string) {
    super(409, code, 'Conflict', detail);
  }
}

export class UnavailableProblem extends Problem {
  constructor(detail: string) {
    super(503, 'service_unavailable', 'Service Unavailable', detail);
  }
}
