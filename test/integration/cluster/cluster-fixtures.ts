import { fileURLToPath } from 'node:url';
import type { RedisConnectionSpec } from '@mailroom/queue';
import type { Sink } from '@mailroom/sink';
import { ResourceLeakError } from '../../harness/leaks.js';
import type { RedisCluster } from '../../harness/redis-cluster.js';
import { sendRedisCommands } from '../../harness/redis.js';
import { waitForValue, WaitTimeoutError } from '../../harness/wait-for.js';

export const BIN = fileURLToPath(new URL('../../../../apps/cli/bin/mailroom.js', import.meta.url));
export const PREFIX = '{mailroom}';

/** The cluster as Mailroom's connection spec (what MAILROOM_REDIS_CLUSTER says). */
export function clusterSpec(cluster: RedisCluster): RedisConnectionSpec {
  return { kind: 'cluster', nodes: cluster.seeds, tls: false };
}

/** `host:port,host:port` of every node, as MAILROOM_REDIS_CLUSTER takes it. */
export function clusterSeedList(cluster: RedisCluster): string {
  return cluster.seeds.map((s) => `${s.host}:${s.port}`).join(',');
}

/** A worker process's environment for the cluster: short locks and retries, no HTTP listener. */
export function clusterWorkerEnv(
  cluster: RedisCluster,
  sink: Sink,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    MAILROOM_REDIS_CLUSTER: clusterSeedList(cluster),
    MAILROOM_SMTP_HOST: '127.0.0.1',
    MAILROOM_SMTP_PORT: String(sink.port),
    MAILROOM_SMTP_TLS: 'none',
    MAILROOM_WORKER_CONCURRENCY: '10',
    MAILROOM_RETRY_BASE_MS: '50',
    MAILROOM_RETRY_MAX_MS: '200',
    MAILROOM_CONFIG_FAULT_PAUSE_MS: '300',
    MAILROOM_LOCK_DURATION_MS: '5000',
    MAILROOM_STALLED_INTERVAL_MS: '2000',
    MAILROOM_SHUTDOWN_TIMEOUT_MS: '5000',
    MAILROOM_SMTP_GREETING_TIMEOUT_MS: '2000',
    MAILROOM_SMTP_CONNECTION_TIMEOUT_MS: '2000',
    MAILROOM_SMTP_SOCKET_TIMEOUT_MS: '5000',
    MAILROOM_RECONCILE_INTERVAL_MS: '1000',
    MAILROOM_HTTP_PORT: '-1',
    MAILROOM_LOG_LEVEL: 'info',
    ...extra,
  };
}

/** Number of keys each live master holds, by port. */
export async function keysPerMaster(cluster: RedisCluster): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const node of cluster.nodes) {
    if (!node.process || node.process.exitCode !== null || node.process.signalCode !== null) continue;
    const [info, size] = await sendRedisCommands(node.port, [['INFO', 'replication'], ['DBSIZE']]);
    if (String(info).includes('role:master')) out.set(node.port, Number(size));
  }
  return out;
}

/**
 * Waits (default up to 5000 ms) until no client other than replication links and the checking connection is
 * connected to any live node of the cluster, else throws {@link ResourceLeakError} naming them.
 */
export async function assertNoClusterClients(cluster: RedisCluster, timeoutMs = 5000): Promise<void> {
  let others: string[] = [];
  try {
    await waitForValue(
      async () => {
        others = [];
        for (const node of cluster.nodes) {
          if (!node.process || node.process.exitCode !== null || node.process.signalCode !== null) continue;
          const [id, list] = await sendRedisCommands(node.port, [
            ['CLIENT', 'ID'],
            ['CLIENT', 'LIST'],
          ]);
          for (const line of String(list).split('\n')) {
            if (line.trim() === '') continue;
            const fields = new Map(
              line
                .trim()
                .split(' ')
                .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
            );
            const flags = fields.get('flags') ?? '';
            // Replication links (S: a replica's link to us, M: our link to the master) are the cluster's own.
            if (fields.get('id') === String(id) || flags.includes('S') || flags.includes('M')) continue;
            others.push(`${node.port}: ${fields.get('name') || '(no name)'} cmd=${fields.get('cmd')}`);
          }
        }
        return others.length === 0 ? true : undefined;
      },
      { timeoutMs, intervalMs: 50, what: 'cluster clients to disconnect' },
    );
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    throw new ResourceLeakError(
      'ERR_REDIS_CLIENT_LEAK',
      `redis client(s) still connected to the cluster:\n  ${others.join('\n  ')}`,
      others,
    );
  }
}
