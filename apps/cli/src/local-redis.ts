import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';

/** Finds an executable in PATH. */
export function findInPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface LocalRedis {
  readonly url: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * Makes sure redis-server exists: on Debian or Ubuntu as root it is installed with apt-get (and the user is
 * told); anywhere else the caller gets the one-line instruction to show.
 */
export function ensureRedisServer(say: (line: string) => void): { path: string } | { instruction: string } {
  const found = findInPath('redis-server');
  if (found) return { path: found };
  const debian = existsSync('/etc/debian_version');
  const root = process.getuid?.() === 0;
  if (debian && root) {
    say('redis-server is not installed: installing it with `apt-get install -y redis-server` ...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
    const install = spawnSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'ignore', env });
    const path = findInPath('redis-server');
    if (update.status === 0 && install.status === 0 && path) return { path };
    return {
      instruction:
        'installing redis-server with apt-get failed: run `apt-get install -y redis-server` and retry',
    };
  }
  return {
    instruction: debian
      ? 'redis-server is not installed: run `sudo apt-get install -y redis-server`, or set REDIS_URL'
      : 'redis-server is not installed: install Redis (e.g. `brew install redis` or `sudo apt-get install redis-server`), or set REDIS_URL',
  };
}

/** Starts a private redis-server on a free loopback port with its own directory (AOF on, noeviction). */
export async function startLocalRedis(binary: string): Promise<LocalRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-redis-'));
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--logfile',
      join(dir, 'redis.log'),
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  const started = Date.now();
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch {
      if (child.exitCode !== null || Date.now() - started > 10_000) {
        probe.disconnect();
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`redis-server did not start on port ${port}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  return {
    url,
    dir,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
