import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  ERROR_CODES,
  IdempotencyConflictError,
  MailroomError,
  NotFoundError,
  ValidationError,
} from '@mailroom/core';

const ERRORS_DOC = fileURLToPath(new URL('../../../../docs/errors.md', import.meta.url));

/** Rows of the `| code | meaning |` table, code without backticks, cell text unescaped. */
function documentedCodes(markdown: string): Map<string, string> {
  const lines = markdown.split('\n');
  const header = lines.findIndex((line) => /^\|\s*code\s*\|\s*meaning\s*\|\s*$/.test(line));
  assert.ok(header >= 0, 'docs/errors.md has a "| code | meaning |" table');
  assert.match(
    lines[header + 1] ?? '',
    /^\|\s*-+\s*\|\s*-+\s*\|\s*$/,
    'the header is followed by a separator',
  );
  const rows = new Map<string, string>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim().replace(/\\\|/g, '|'));
    assert.equal(cells.length, 2, `row has two cells: ${line}`);
    const code = (cells[0] ?? '').replace(/^`|`$/g, '');
    assert.ok(!rows.has(code), `${code} is documented once`);
    rows.set(code, cells[1] ?? '');
  }
  return rows;
}

void describe('error codes', () => {
  void it('docs/errors.md documents exactly ERROR_CODES, with the same meanings', () => {
    const documented = documentedCodes(readFileSync(ERRORS_DOC, 'utf8'));
    for (const [code, meaning] of Object.entries(ERROR_CODES)) {
      assert.equal(documented.get(code), meaning, `${code} is documented with its meaning`);
    }
    for (const code of documented.keys()) {
      assert.ok(Object.hasOwn(ERROR_CODES, code), `${code} in the doc exists in ERROR_CODES`);
    }
    assert.equal(documented.size, Object.keys(ERROR_CODES).length);
  });

  void it('ValidationError lists every issue as "field: reason" joined by "; "', () => {
    const err = new ValidationError([
      { field: 'to', message: 'local part is longer than 64 octets (65)' },
      { field: 'subject', message: 'contains a control character (U+000A)' },
    ]);
    assert.equal(
      err.message,
      'invalid message: to: local part is longer than 64 octets (65); subject: contains a control character (U+000A)',
    );
    assert.equal(err.code, 'ERR_VALIDATION');
    assert.equal(err.name, 'ValidationError');
    assert.equal(err.issues.length, 2);
    assert.ok(Object.isFrozen(err.issues));
    assert.ok(err instanceof MailroomError && err instanceof Error);
  });

  void it('ConfigError names every bad setting and keeps the cause', () => {
    const cause = new Error('EACCES');
    const err = new ConfigError([{ field: 'MAILROOM_SMTP_PORT', message: 'must be a port number' }], {
      cause,
    });
    assert.equal(err.message, 'invalid configuration: MAILROOM_SMTP_PORT: must be a port number');
    assert.equal(err.code, 'ERR_CONFIG');
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.cause, cause);
    assert.deepEqual(err.issues, [{ field: 'MAILROOM_SMTP_PORT', message: 'must be a port number' }]);
  });

  void it('each class has its own code and name', () => {
    const conflict = new IdempotencyConflictError('key k1 belongs to another message');
    const missing = new NotFoundError('no message 0abc');
    const base = new MailroomError('ERR_REDIS_UNAVAILABLE', 'redis down');
    assert.deepEqual(
      [conflict, missing, base].map((e) => [e.name, e.code, e instanceof MailroomError]),
      [
        ['IdempotencyConflictError', 'ERR_IDEMPOTENCY_CONFLICT', true],
        ['NotFoundError', 'ERR_NOT_FOUND', true],
        ['MailroomError', 'ERR_REDIS_UNAVAILABLE', true],
      ],
    );
    assert.match(String(conflict), /^IdempotencyConflictError: key k1/);
  });
});
