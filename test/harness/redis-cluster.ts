import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { freePort } from './ports.js';
import { orphanSafeCommand } from './processes.js';
import { sendRedisCommands } from './redis.js';

const HOST = '127.0.0.1';
const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
const START_TIMEOUT_MS = 20_000;

/** One node of a test cluster: a redis-server in cluster mode, in its own directory. */
export interface ClusterNode {
  readonly port: number;
  readonly busPort: number;
  readonly dir: string;
  process: ChildProcess | undefined;
}

/** A Redis Cluster on loopback owned by a test: `masters` masters, each with `replicas` replicas. */
export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** `host:port` of every node, as Mailroom's cluster setting takes them. */
  readonly seeds: readonly { host: string; port: number }[];
  /** A new ioredis Cluster client, closed by {@link stop}. */
  client(): Cluster;
  /** The node serving `key`'s slot as master now. */
  masterOf(key: string): Promise<ClusterNode>;
  /** SIGKILLs a node (its replica is promoted by the cluster after cluster-node-timeout). */
  kill(node: ClusterNode): Promise<void>;
  /** Resolves once every slot is served and the cluster says ok. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not there yet
    }
    if (Date.now() > end) throw new Error(`redis cluster: timed out waiting for ${what}`);
    await delay(100);
  }
}

async function startNode(node: ClusterNode, nodeTimeoutMs: number): Promise<void> {
  const args = [
    '--bind',
    HOST,
    '--port',
    String(node.port),
    '--cluster-enabled',
    'yes',
    '--cluster-port',
    String(node.busPort),
    '--cluster-config-file',
    join(node.dir, 'nodes.conf'),
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    '--dir',
    node.dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--daemonize',
    'no',
    '--logfile',
    join(node.dir, 'redis.log'),
  ];
  const { command, args: commandArgs } = orphanSafeCommand(REDIS_SERVER, args);
  node.process = spawn(command, commandArgs, { stdio: 'ignore' });
  await waitFor(
    async () => (await sendRedisCommands(node.port, [['PING']], { timeoutMs: 500 }))[0] === 'PONG',
    START_TIMEOUT_MS,
    `node ${node.port} to answer`,
  );
}

/**
 * Starts `masters * (1 + replicas)` redis-server processes in cluster mode on free loopback ports (client
 * and bus port each), joins them with `redis-cli --cluster create`, and waits until the cluster is ok.
 */
export async function startRedisCluster(
  options: { masters?: number; replicas?: number; nodeTimeoutMs?: number } = {},
): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 2000;
  const nodes: ClusterNode[] = [];
  const clients: Cluster[] = [];
  // Distinct ports: the kernel may hand the same free port out twice in a row.
  const taken = new Set<number>();
  const distinctPort = async (): Promise<number> => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  for (let i = 0; i < masters * (1 + replicas); i += 1) {
    nodes.push({
      port: await distinctPort(),
      busPort: await distinctPort(),
      dir: await mkdtemp(join(tmpdir(), 'mailroom-cluster-')),
      process: undefined,
    });
  }
  const stop = async (): Promise<void> => {
    for (const c of clients.splice(0)) c.disconnect();
    await Promise.all(
      nodes.map(async (n) => {
        const p = n.process;
        if (p && p.exitCode === null && p.signalCode === null) {
          const exited = new Promise<void>((r) => p.once('exit', () => r()));
          p.kill('SIGKILL');
          await exited;
        }
        await rm(n.dir, { recursive: true, force: true });
      }),
    );
  };
  try {
    await Promise.all(nodes.map((n) => startNode(n, nodeTimeoutMs)));
    const created = spawnSync(
      REDIS_CLI,
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  } catch (err) {
    await stop();
    throw err;
  }

  const waitHealthy = async (timeoutMs = 30_000): Promise<void> => {
    await waitFor(
      async () => {
        const live = nodes.filter(
          (n) => n.process && n.process.exitCode === null && n.process.signalCode === null,
        );
        const livePorts = new Set(live.map((n) => n.port));
        for (const n of live) {
          const [info, slots] = await sendRedisCommands(
            n.port,
            [
              ['CLUSTER', 'INFO'],
              ['CLUSTER', 'SLOTS'],
            ],
            {
              timeoutMs: 500,
            },
          );
          if (typeof info !== 'string' || !info.includes('cluster_state:ok')) return false;
          // Every slot range is served by a master that is alive (after a kill: its replica took over).
          const ranges = slots as unknown as [number, number, [string, number]][];
          if (ranges.length === 0 || ranges.some((r) => !livePorts.has(r[2][1]))) return false;
        }
        return true;
      },
      timeoutMs,
      'every slot served by a live master, cluster_state:ok on every live node',
    );
  };
  await waitHealthy();
  // Replicas must hold a full copy before a test kills a master, or there is nothing to fail over to.
  await waitFor(
    async () => {
      const infos = await Promise.all(
        nodes.map(async (n) => String((await sendRedisCommands(n.port, [['INFO', 'replication']]))[0])),
      );
      const replicaInfos = infos.filter((i) => i.includes('role:slave'));
      return (
        replicaInfos.length === masters * replicas &&
        replicaInfos.every((i) => i.includes('master_link_status:up'))
      );
    },
    START_TIMEOUT_MS,
    'every replica in sync with its master',
  );

  const seeds = nodes.map((n) => ({ host: HOST, port: n.port }));
  return {
    nodes,
    seeds,
    client() {
      const c = new Cluster(seeds, { redisOptions: { maxRetriesPerRequest: null } });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    async masterOf(key: string) {
      const live = nodes.find(
        (n) => n.process && n.process.exitCode === null && n.process.signalCode === null,
      )!;
      const [slot] = await sendRedisCommands(live.port, [['CLUSTER', 'KEYSLOT', key]]);
      const [shards] = await sendRedisCommands(live.port, [['CLUSTER', 'SLOTS']]);
      for (const range of shards as unknown as [number, number, [string, number, string]][]) {
        if ((slot as number) >= range[0] && (slot as number) <= range[1]) {
          const port = range[2][1];
          return nodes.find((n) => n.port === port)!;
        }
      }
      throw new Error(`no master for slot ${String(slot)}`);
    },
    async kill(node) {
      const p = node.process;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGKILL');
      await exited;
    },
    waitHealthy,
    stop,
  };
}
