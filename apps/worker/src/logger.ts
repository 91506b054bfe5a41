import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths removed from every log line: credentials in any object, and recipient addresses, which Mailroom
 * only logs at debug level (and even then under `rcpt`, never inside error objects at info).
 */
export const REDACT_PATHS = [
  'pass',
  'password',
  '*.pass',
  '*.password',
  'auth',
  '*.auth',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'metricsToken',
  '*.metricsToken',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, app: 'mailroom-worker' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    destination ?? process.stdout,
  );
}
