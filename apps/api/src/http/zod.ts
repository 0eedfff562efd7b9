import { applyDecorators, PipeTransform } from '@nestjs/common';
import { ApiBody, ApiQuery } from '@nestjs/swagger';
import { z } from 'zod';
import { Problem, ValidationProblem } from '../../../../libs/core/src/index.js';

/** Validates a body or query against a zod schema; failures are 422 problems naming each field. */
export class ZodPipe<T extends z.ZodTypeAny> implements PipeTransform<unknown, z.infer<T>> {
  constructor(private readonly schema: T, private readonly where: 'body' | 'query' = 'body') {}
  transform(value: unknown): z.infer<T> {
    // Fastify parses text/plain into a string; the REST API speaks JSON only.
    if (this.where === 'body' && (typeof value === 'string' || Buffer.isBuffer(value))) {
      throw new Problem(415, 'unsupported_media_type', 'Unsupported Media Type', 'send the body as application/json');
    }
    const parsed = this.schema.safeParse(value ?? {});
    if (parsed.success) return parsed.data;
    throw new ValidationProblem(
      parsed.error.issues.map((i) => ({ field: i.path.length ? i.path.join('.') : this.where, message: i.message })),
      this.where === 'query' ? 'invalid_query' : 'validation_failed',
    );
  }
}

const jsonSchema = (schema: z.ZodTypeAny) => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;

/** Documents a zod-validated body in the OpenAPI document, from the same schema that validates it. */
export const ApiZodBody = (schema: z.ZodTypeAny) => ApiBody({ schema: jsonSchema(schema) as never });

export const ApiZodQuery = (schema: z.ZodObject) =>
  applyDecorators(
    ...Object.entries(schema.shape).map(([name, s]) => ApiQuery({ name, required: false, schema: jsonSchema(s as z.ZodTypeAny) as never })),
  );
