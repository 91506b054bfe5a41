import { sendRedisCommands, type RedisServer } from './redis.js';
import { waitForValue, WaitTimeoutError } from './wait-for.js';

/** Something a test started is still running at its end. */
export class ResourceLeakError extends Error {
  override readonly name = 'ResourceLeakError';
  constructor(
    readonly code: 'ERR_RESOURCE_LEAK' | 'ERR_REDIS_CLIENT_LEAK',
    message: string,
    readonly leaked: readonly string[],
  ) {
    super(message);
  }
}

/** The kinds of the handles and requests keeping the event loop alive (`'TCPSocketWrap'`, `'Timeout'`, ...). */
export function snapshotResources(): string[] {
  return process.getActiveResourcesInfo();
}

/** Entries of `now` beyond those in `before`, counted as multisets. */
function extras(before: readonly string[], now: readonly string[]): string[] {
  const budget = new Map<string, number>();
  for (const kind of before) budget.set(kind, (budget.get(kind) ?? 0) + 1);
  const extra: string[] = [];
  for (const kind of now) {
    const left = budget.get(kind) ?? 0;
    if (left > 0) budget.set(kind, left - 1);
    else extra.push(kind);
  }
  return extra;
}

/**
 * Waits (default up to 5000 ms) until the active resources are no more than the `before` snapshot, kind by
 * kind, else throws {@link ResourceLeakError} listing the extra ones. Sockets and child processes take a few
 * event-loop turns to close after their owners are told to, hence the wait.
 */
export async function assertNoResourceLeaks(
  before: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<void> {
  let lastExtras: string[] = [];
  try {
    // The probe is synchronous on purpose: waitFor then runs it with no timer of its own pending.
    await waitForValue(
      () => {
        lastExtras = extras(before, snapshotResources());
        return lastExtras.length === 0 ? true : undefined;
      },
      {
        timeoutMs: options.timeoutMs ?? 5000,
        intervalMs: 20,
        what: 'active resources to return to the baseline',
      },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    throw new ResourceLeakError(
      'ERR_RESOURCE_LEAK',
      `resources still active beyond the baseline: ${lastExtras.join(', ')}`,
      lastExtras,
    );
  }
}

/** The fields of one `CLIENT LIST` line (`id=7 addr=127.0.0.1:5678 ... name=x ... cmd=get`). */
function parseClientLine(line: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const pair of line.trim().split(' ')) {
    const eq = pair.indexOf('=');
    if (eq > 0) fields.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return fields;
}

function describeClient(fields: Map<string, string>): string {
  const name = fields.get('name') || '(no name)';
  return `${name} id=${fields.get('id')} addr=${fields.get('addr')} age=${fields.get('age')}s last-cmd=${fields.get('cmd')}`;
}

/**
 * Waits (default up to 5000 ms) until no more than `allow` (default 0) clients other than the checking
 * connection itself are connected to `redis` (`CLIENT LIST` from a fresh connection), else throws
 * {@link ResourceLeakError} naming them.
 */
export async function assertNoRedisClients(
  redis: RedisServer,
  options: { allow?: number; timeoutMs?: number } = {},
): Promise<void> {
  const allow = options.allow ?? 0;
  let others: string[] = [];
  try {
    await waitForValue(
      async () => {
        const [id, list] = await sendRedisCommands(redis.port, [
          ['CLIENT', 'ID'],
          ['CLIENT', 'LIST'],
        ]);
        others = String(list)
          .split('\n')
          .filter((line) => line.trim() !== '')
          .map(parseClientLine)
          .filter((fields) => fields.get('id') !== String(id))
          .map(describeClient);
        return others.length <= allow ? true : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 5000, intervalMs: 50, what: 'redis clients to disconnect' },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    const detail = others.length > 0 ? others.join('\n  ') : `(no answer: ${String(err.cause)})`;
    throw new ResourceLeakError(
      'ERR_REDIS_CLIENT_LEAK',
      `${others.length} redis client(s) still connected to port ${redis.port} (allowed ${allow}):\n  ${detail}`,
      others,
    );
  }
}
