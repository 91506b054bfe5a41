import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startProcess } from './child-process.mjs';
import { freePort } from './free-port.mjs';
import { registerCleanup } from './cleanup.mjs';
import { waitUntil } from './wait-until.mjs';
import { findExecutable } from './find-executable.mjs';
import { BenchProcessError, BenchUnavailableError } from './bench-errors.mjs';

/**
 * @typedef {object} BenchRedis
 * @property {string} url `redis://127.0.0.1:PORT`
 * @property {number} pid
 * @property {() => Promise<void>} stop stops the server and deletes its directory
 */

/**
 * The settings every Redis of the benchmark runs with: durable like production (AOF, fsync once a second),
 * never evicting queued jobs, no RDB snapshots (they would fork in the middle of a measurement).
 */
export const REDIS_SETTINGS = Object.freeze({
  appendonly: 'yes',
  appendfsync: 'everysec',
  'maxmemory-policy': 'noeviction',
  save: '',
});

/**
 * Memory the server holds for data (INFO memory's used_memory), in bytes.
 * @param {string} url
 * @returns {Promise<number>}
 */
export async function redisUsedMemory(url) {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const info = await client.info('memory');
    return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
  } finally {
    client.disconnect();
  }
}

/**
 * Starts a private redis-server on a free loopback port, in its own temporary directory.
 * @param {{ name: string, startTimeoutMs?: number }} options `startTimeoutMs` default 10000
 * @returns {Promise<BenchRedis>}
 */
export async function startRedisServer({ name, startTimeoutMs = 10_000 }) {
  const binary = findExecutable('redis-server');
  if (!binary) {
    throw new BenchUnavailableError(
      'redis-server is not installed (Debian: apt-get install -y redis-server)',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-redis-'));
  const dropDir = registerCleanup(`redis directory ${dir}`, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  const port = await freePort();
  const settings = Object.entries(REDIS_SETTINGS).flatMap(([key, value]) => [`--${key}`, value]);
  const server = startProcess(
    binary,
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      dir,
      '--daemonize',
      'no',
      ...settings,
      '--logfile',
      join(dir, 'redis.log'),
    ],
    { name },
  );
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  const stop = async () => {
    await server.stop({ graceMs: 10_000 });
    rmSync(dir, { recursive: true, force: true });
    dropDir();
  };
  try {
    await waitUntil(
      async () => {
        if (!server.running()) throw new BenchProcessError(`${name} exited at start: ${server.output()}`);
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return false;
        }
      },
      { timeoutMs: startTimeoutMs, intervalMs: 50, what: `${name} to answer PING on port ${port}` },
    );
  } catch (err) {
    probe.disconnect();
    await stop();
    throw err;
  }
  probe.disconnect();
  return { url, pid: server.pid, stop };
}
