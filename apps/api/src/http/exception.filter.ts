import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError, Problem, ServerError, TemporarilyUnavailableError, UnauthorizedProblem } from '../../../../libs/core/src/index.js';

const OAUTH_PATHS = /^\/oauth\//;

/** Maps Fastify/Nest HTTP errors (bad JSON, body too large, unknown route...) to stable codes. */
function problemFromHttp(err: HttpException): Problem {
  const status = err.getStatus();
  const codes: Record<number, [string, string]> = {
    400: ['bad_request', 'Bad Request'],
    401: ['unauthenticated', 'Unauthorized'],
    403: ['forbidden', 'Forbidden'],
    404: ['not_found', 'Not Found'],
    405: ['method_not_allowed', 'Method Not Allowed'],
    413: ['payload_too_large', 'Content Too Large'],
    415: ['unsupported_media_type', 'Unsupported Media Type'],
  };
  const [code, title] = codes[status] ?? ['http_error', 'Error'];
  const response = err.getResponse();
  const message = typeof response === 'object' && response && 'message' in response ? String((response as { message: unknown }).message) : err.message;
  const detail = status === 400 && /JSON|body/i.test(message) ? 'the request body is not valid JSON' : message;
  return new Problem(status, status === 400 && detail.includes('JSON') ? 'malformed_json' : code, title, detail);
}

function fastifyError(err: unknown): HttpException | null {
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && typeof e.code === 'string' && e.code.startsWith('FST_')) {
    return new HttpException(e.message ?? 'bad request', e.statusCode);
  }
  return null;
}

/**
 * The one place errors become HTTP: OAuth endpoints answer RFC 6749 §5.2 JSON, everything else
 * RFC 9457 problem details. Unexpected errors are logged and never leak.
 */
@Catch()
export class ExceptionsFilter implements ExceptionFilter {
  private readonly log = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const req = host.switchToHttp().getRequest<FastifyRequest>();
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const http = exception instanceof HttpException ? exception : fastifyError(exception);
    const isOAuth = OAUTH_PATHS.test(req.url);

    if (isOAuth) {
      let err: OAuthError;
      if (exception instanceof OAuthError) err = exception;
      else if (http && http.getStatus() < 500) err = new (class extends OAuthError { readonly error = 'invalid_request'; })(http.getStatus() === 413 ? 'request body too large' : 'malformed request');
      else if (isUnavailable(exception)) err = new TemporarilyUnavailableError('a backing service is unreachable, try again');
      else {
        this.log.error(exception instanceof Error ? exception.stack : String(exception));
        err = new ServerError();
      }
      void reply.status(err.status).headers({ 'cache-control': 'no-store', pragma: 'no-cache', ...err.headers }).send(err.body());
      return;
    }

    let problem: Problem;
    if (exception instanceof Problem) problem = exception;
    else if (http) problem = problemFromHttp(http);
    else if (isUnavailable(exception)) problem = new Problem(503, 'service_unavailable', 'Service Unavailable', 'a backing service is unreachable, try again');
    else {
      this.log.error(exception instanceof Error ? exception.stack : String(exception));
      problem = new Problem(500, 'internal_error', 'Internal Server Error', 'the server could not complete the request');
    }
    const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
    if (problem.status === 401) headers['www-authenticate'] = problem instanceof UnauthorizedProblem ? problem.challenge : 'Bearer realm="procura"';
    void reply
      .status(problem.status)
      .headers(headers)
      .send({ type: 'about:blank', title: problem.title, status: problem.status, detail: problem.detail, code: problem.code, instance: req.url.split('?')[0], ...problem.extra });
  }
}

/** Postgres or Redis connection failures: the request may succeed later. */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string; name?: string };
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03', '08006', '08001', '08003'].includes(e?.code ?? '') ||
    /Connection terminated|connect ECONNREFUSED|Stream isn't writeable|Connection is closed|timeout exceeded when trying to connect/i.test(e?.message ?? '')
  );
}
