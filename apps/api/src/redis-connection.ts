import type { Redis } from 'ioredis';
import { asStoreConnection, createRedisConnection, type RedisTarget } from '@mailroom/queue';

export interface ApiRedisOptions {
  /** A command that has not answered in this long fails (ms). */
  readonly timeoutMs: number;
  readonly connectionName?: string;
}

/**
 * The API's Redis connection: commands are never queued while Redis is away (enableOfflineQueue false) and
 * never resent after a reconnect (the HTTP client retries, with its Idempotency-Key), every command is
 * bounded by `timeoutMs`, and reconnection is attempted every 100-500 ms so service resumes as soon as Redis
 * is back. A request that meets an unavailable Redis is answered 503 within about `timeoutMs`. `target` is
 * a URL or a cluster or Sentinel spec; the result has the stores' type (see asStoreConnection).
 */
export function createApiRedis(target: RedisTarget, options: ApiRedisOptions): Redis {
  const connection = createRedisConnection(target, {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.timeoutMs,
    connectTimeout: Math.max(options.timeoutMs, 1000),
    retryStrategy: (times) => Math.min(100 * times, 500),
    connectionName: options.connectionName ?? 'mailroom:api',
  });
  connection.on('error', () => undefined); // reported by readiness and by the commands that fail
  return asStoreConnection(connection);
}

/** Resolves true once `redis` is ready, false after `timeoutMs` (the connection keeps trying). */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise<boolean>((resolve) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    redis.once('ready', onReady);
  });
}

const UNAVAILABLE_MESSAGES = [
  "Stream isn't writeable",
  'Connection is closed',
  'Command timed out',
  'Reached the max retries per request limit',
  'connect ETIMEDOUT',
  // A cluster without a master for the slot (a failover under way), or with no node reachable.
  'Too many Cluster redirections',
  "Cluster isn't ready",
  'Failed to refresh slots cache',
];
const UNAVAILABLE_REPLIES = [
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'READONLY',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'MISCONF',
];
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** True for an error that says Redis could not be reached or did not answer, as opposed to a bug. */
export function isRedisUnavailableError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  if (UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m))) return true;
  return err.name === 'ReplyError' && UNAVAILABLE_REPLIES.some((r) => err.message.startsWith(r));
}
