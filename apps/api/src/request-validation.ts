import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { z } from 'zod';
import type { FieldIssue } from '@mailroom/core';

/** Header names as the API documents them, for naming a header in an error. */
const HEADER_NAMES: Readonly<Record<string, string>> = {
  'idempotency-key': 'Idempotency-Key',
  'content-type': 'Content-Type',
};

/** `attachments[0].content` from `['attachments', 0, 'content']`, the way core names fields. */
export function fieldName(path: readonly PropertyKey[]): string {
  let field = '';
  for (const segment of path) {
    if (typeof segment === 'number') field += `[${segment}]`;
    else field += field === '' ? String(segment) : `.${String(segment)}`;
  }
  return field === '' ? '(body)' : field;
}

/** Body schemas that only document a streamed body (the stream itself is the body and is read by the handler). */
const streamedBodies = new WeakSet<z.ZodType>();

/** Marks `schema` as the documentation of a streamed body: it is never used to validate. */
export function streamedBody<T extends z.ZodType>(schema: T): T {
  streamedBodies.add(schema);
  return schema;
}

/**
 * Fastify's validator for the zod route schemas: the parsed value replaces the request part, and each
 * issue keeps the field it is about, named as core names fields.
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data: unknown) => {
    if (httpPart === 'body' && streamedBodies.has(schema)) return { value: data };
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    const error: FastifySchemaValidationError[] = result.error.issues.map((issue) => ({
      keyword: issue.code,
      instancePath: `/${issue.path.map(String).join('/')}`,
      schemaPath: '#',
      params: { field: fieldName(issue.path) },
      message: issue.message,
    }));
    return { error };
  };

/** The field issues of a Fastify validation error, fields named for the part of the request they are in. */
export function validationIssues(
  validation: readonly FastifySchemaValidationError[],
  context: string | undefined,
): FieldIssue[] {
  return validation.map((v) => {
    const named: unknown = v.params.field;
    const raw = typeof named === 'string' ? named : v.instancePath.replace(/^\//, '');
    const field = context === 'headers' ? (HEADER_NAMES[raw] ?? raw) : raw;
    return { field, message: v.message ?? 'is invalid' };
  });
}
