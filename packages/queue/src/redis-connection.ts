import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ConfigError, type FieldIssue } from '@mailroom/core';

/**
 * What every Mailroom process talks to: one Redis (a URL, or the master that Sentinel names) or a Redis
 * Cluster. ioredis gives both the same commands; BullMQ takes either as its `connection`.
 */
export type RedisConnection = Redis | Cluster;

/** One `host:port` of a cluster seed list or a Sentinel list. */
export interface RedisNodeAddress {
  readonly host: string;
  readonly port: number;
}

/** Where Redis is. Credentials and TLS of a URL are in the URL (`rediss://user:password@host:port/db`). */
export type RedisConnectionSpec =
  | { readonly kind: 'url'; readonly url: string }
  | {
      readonly kind: 'cluster';
      /** Seed nodes: the rest of the cluster is discovered from them. */
      readonly nodes: readonly RedisNodeAddress[];
      readonly username?: string;
      readonly password?: string;
      /** TLS to every node, verified against the system CAs. */
      readonly tls: boolean;
    }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly RedisNodeAddress[];
      /** The master group the Sentinels monitor (`sentinel monitor <name> ...`). */
      readonly name: string;
      /** ACL user and password of the master (and its replicas). */
      readonly username?: string;
      readonly password?: string;
      /** Password of the Sentinels themselves, when they require AUTH. */
      readonly sentinelPassword?: string;
      /** TLS to the Sentinels and to the master, verified against the system CAs. */
      readonly tls: boolean;
    };

/** A connection spec, or a `redis://` / `rediss://` URL (the same as `{ kind: 'url', url }`). */
export type RedisTarget = string | RedisConnectionSpec;

/** ioredis options of each connection to a server (RESP2 replies: `replyMapping` would change the client's type). */
export type RedisConnectionOptions = Omit<RedisOptions, 'replyMapping'>;

/** ioredis options of a cluster as a whole (`redisOptions` comes from {@link RedisConnectionOptions}). */
export type ClusterConnectionOptions = Omit<ClusterOptions, 'replyMapping' | 'redisOptions'>;

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * Cluster behaviour of processes whose commands wait for Redis (`maxRetriesPerRequest: null`: workers,
 * BullMQ). A failover takes cluster-node-timeout (15 s by default) plus an election; meanwhile commands for
 * the lost master's slots meet closed connections, MOVED to the dead node, or CLUSTERDOWN. ioredis retries
 * each after a delay, up to maxRedirections times: 400 tries 300 ms apart ride through a minute of it, as a
 * single Redis connection waits through a restart. Fail-fast processes keep ioredis' defaults (16 x 100 ms).
 */
const WAITING_CLUSTER_OPTIONS: ClusterConnectionOptions = {
  maxRedirections: 400,
  retryDelayOnFailover: 300,
  retryDelayOnClusterDown: 300,
  retryDelayOnTryAgain: 300,
};

/**
 * Opens the connection `target` names, with `options` for each connection to a Redis server (for one Redis:
 * exactly `new Redis(url, options)`). On a cluster the per-connection options go to every node, except
 * `enableOfflineQueue`, `retryStrategy` and `lazyConnect`, which apply to the cluster as a whole;
 * `clusterOptions` adds to the cluster's own.
 */
export function createRedisConnection(
  target: RedisTarget,
  options: RedisConnectionOptions = {},
  clusterOptions: ClusterConnectionOptions = {},
): RedisConnection {
  const spec: RedisConnectionSpec = typeof target === 'string' ? { kind: 'url', url: target } : target;
  switch (spec.kind) {
    case 'url':
      return new Redis(spec.url, options);
    case 'sentinel':
      return new Redis({
        // A master demoted by a failover it missed answers writes with READONLY: reconnect (Sentinel names
        // the new master) and send the command again.
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
        ...options,
        sentinels: spec.sentinels.map((n) => ({ host: n.host, port: n.port })),
        name: spec.name,
        ...credentials(spec),
        ...(spec.sentinelPassword === undefined ? {} : { sentinelPassword: spec.sentinelPassword }),
        ...(spec.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      });
    case 'cluster': {
      const { enableOfflineQueue, retryStrategy, lazyConnect, ...nodeOptions } = options;
      return new Cluster(
        spec.nodes.map((n) => ({ host: n.host, port: n.port })),
        {
          ...(options.maxRetriesPerRequest === null ? WAITING_CLUSTER_OPTIONS : {}),
          ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
          ...(retryStrategy === undefined ? {} : { clusterRetryStrategy: retryStrategy }),
          ...(lazyConnect === undefined ? {} : { lazyConnect }),
          // Node addresses come from CLUSTER SLOTS as IPs; TLS must verify the name the operator gave.
          ...(spec.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
          ...clusterOptions,
          redisOptions: {
            ...nodeOptions,
            ...credentials(spec),
            ...(spec.tls ? { tls: {} } : {}),
          },
        },
      );
    }
  }
}

function credentials(spec: {
  readonly username?: string;
  readonly password?: string;
}): RedisConnectionOptions {
  return {
    ...(spec.username === undefined ? {} : { username: spec.username }),
    ...(spec.password === undefined ? {} : { password: spec.password }),
  };
}

/** True when `connection` is a Redis Cluster client. */
export function isClusterConnection(connection: RedisConnection): connection is Cluster {
  return connection.isCluster;
}

/**
 * Resolves once the connection is ready (a cluster: its slot map is loaded). Rejects when the connection
 * ends first or, if `timeoutMs` is given, when that passes (without it, waits as long as the connection keeps
 * trying).
 */
export async function redisConnectionReady(connection: RedisConnection, timeoutMs?: number): Promise<void> {
  if (connection.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      connection.off('ready', onReady);
      connection.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onEnd = () => done(new Error('redis connection ended before it was ready'));
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => done(new Error(`redis not ready within ${timeoutMs} ms`)), timeoutMs);
    connection.once('ready', onReady);
    connection.once('end', onEnd);
  });
}

/**
 * The Redis servers behind a connection: itself, or every node of a cluster (masters and replicas; call after
 * {@link redisConnectionReady}). For checks that must hold on each server (persistence, eviction policy).
 */
export function redisServers(connection: RedisConnection): Redis[] {
  return isClusterConnection(connection) ? connection.nodes('all') : [connection];
}

/**
 * The connection as the `Redis` type Mailroom's stores are declared with (ioredis' Cluster and Redis share
 * every command signature but are distinct classes). Sound because the stores issue only what a cluster
 * routes by key: commands on hash-tagged keys, scripts through LuaScript (which declares a routing key),
 * MULTI and pipelines whose keys share the prefix's hash tag. Remove once every store takes a
 * RedisConnection.
 */
export function asStoreConnection(connection: RedisConnection): Redis {
  return connection as Redis;
}

// ---------------------------------------------------------------------------------------------------------
// Settings: the MAILROOM_REDIS_* variables every process reads, validated the same way everywhere.

const NODE_ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/;

/**
 * Parses `host:port[,host:port...]` (a host is a name, an IPv4 address or a bracketed IPv6 address);
 * undefined when an item is malformed or a port is outside 1-65535.
 */
export function parseRedisNodes(text: string): RedisNodeAddress[] | undefined {
  const nodes: RedisNodeAddress[] = [];
  for (const part of text.split(',')) {
    const match = NODE_ADDRESS.exec(part.trim());
    const host = match?.[1] ?? match?.[2];
    const port = Number(match?.[3]);
    if (host === undefined || !(port >= 1 && port <= 65535)) return undefined;
    nodes.push({ host, port });
  }
  return nodes;
}

/** The MAILROOM_REDIS_* values as read (undefined: not set). */
export interface RedisConnectionSettings {
  /** MAILROOM_REDIS_URL, only when the environment sets it (its default applies when nothing else is set). */
  readonly url?: string | undefined;
  readonly cluster?: string | undefined;
  readonly sentinels?: string | undefined;
  readonly sentinelName?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly tls?: boolean | undefined;
  readonly sentinelPassword?: string | undefined;
}

/** A process's parsed MAILROOM_REDIS_* settings (every process reads the same ones). */
export interface RedisSettingValues {
  readonly MAILROOM_REDIS_URL: string;
  readonly MAILROOM_REDIS_CLUSTER?: string | undefined;
  readonly MAILROOM_REDIS_SENTINELS?: string | undefined;
  readonly MAILROOM_REDIS_SENTINEL_NAME?: string | undefined;
  readonly MAILROOM_REDIS_USERNAME?: string | undefined;
  readonly MAILROOM_REDIS_PASSWORD?: string | undefined;
  readonly MAILROOM_REDIS_TLS?: boolean | undefined;
  readonly MAILROOM_REDIS_SENTINEL_PASSWORD?: string | undefined;
}

/**
 * The settings readRedisConnectionSpec takes, from a process's parsed values. The URL counts only when the
 * environment set it (its default must not clash with a cluster or Sentinel).
 */
export function redisConnectionSettings(
  s: RedisSettingValues,
  env: Readonly<Record<string, string | undefined>>,
): RedisConnectionSettings {
  return {
    url: env.MAILROOM_REDIS_URL ? s.MAILROOM_REDIS_URL : undefined,
    cluster: s.MAILROOM_REDIS_CLUSTER,
    sentinels: s.MAILROOM_REDIS_SENTINELS,
    sentinelName: s.MAILROOM_REDIS_SENTINEL_NAME,
    username: s.MAILROOM_REDIS_USERNAME,
    password: s.MAILROOM_REDIS_PASSWORD,
    tls: s.MAILROOM_REDIS_TLS,
    sentinelPassword: s.MAILROOM_REDIS_SENTINEL_PASSWORD,
  };
}

/**
 * Turns the settings into a spec, pushing every problem onto `issues` (named by variable) and returning
 * undefined if there is one. One of MAILROOM_REDIS_URL, _CLUSTER and _SENTINELS (the default URL when none);
 * credentials and TLS settings only with a cluster or Sentinel (a URL carries its own).
 */
export function readRedisConnectionSpec(
  s: RedisConnectionSettings,
  issues: FieldIssue[],
  defaultUrl = DEFAULT_REDIS_URL,
): RedisConnectionSpec | undefined {
  const before = issues.length;
  const chosen = (
    [
      ['MAILROOM_REDIS_URL', s.url],
      ['MAILROOM_REDIS_CLUSTER', s.cluster],
      ['MAILROOM_REDIS_SENTINELS', s.sentinels],
    ] as const
  ).filter(([, value]) => value !== undefined);
  if (chosen.length > 1) {
    issues.push({
      field: chosen[1]![0],
      message: `set only one of MAILROOM_REDIS_URL, MAILROOM_REDIS_CLUSTER and MAILROOM_REDIS_SENTINELS (${chosen.map(([name]) => name).join(' and ')} are set)`,
    });
  }
  const nodesOf = (field: string, text: string | undefined) => {
    if (text === undefined) return [];
    const nodes = parseRedisNodes(text);
    if (!nodes) issues.push({ field, message: 'must be host:port[,host:port...] with ports 1-65535' });
    return nodes ?? [];
  };
  const clusterNodes = nodesOf('MAILROOM_REDIS_CLUSTER', s.cluster);
  const sentinels = nodesOf('MAILROOM_REDIS_SENTINELS', s.sentinels);
  if (s.url !== undefined && !/^rediss?:\/\//.test(s.url)) {
    issues.push({ field: 'MAILROOM_REDIS_URL', message: 'must be a redis:// or rediss:// URL' });
  }
  if (s.cluster === undefined && s.sentinels === undefined) {
    for (const [field, value] of [
      ['MAILROOM_REDIS_USERNAME', s.username],
      ['MAILROOM_REDIS_PASSWORD', s.password],
      ['MAILROOM_REDIS_TLS', s.tls === true ? true : undefined],
    ] as const) {
      if (value !== undefined) {
        issues.push({
          field,
          message:
            'applies to MAILROOM_REDIS_CLUSTER and MAILROOM_REDIS_SENTINELS only (a URL carries its own: rediss://user:password@host:port)',
        });
      }
    }
  }
  if (s.sentinels !== undefined && s.sentinelName === undefined) {
    issues.push({
      field: 'MAILROOM_REDIS_SENTINEL_NAME',
      message: 'is required with MAILROOM_REDIS_SENTINELS',
    });
  }
  if (s.sentinels === undefined) {
    for (const [field, value] of [
      ['MAILROOM_REDIS_SENTINEL_NAME', s.sentinelName],
      ['MAILROOM_REDIS_SENTINEL_PASSWORD', s.sentinelPassword],
    ] as const) {
      if (value !== undefined) issues.push({ field, message: 'applies to MAILROOM_REDIS_SENTINELS only' });
    }
  }
  if (issues.length > before) return undefined;
  const auth = {
    ...(s.username === undefined ? {} : { username: s.username }),
    ...(s.password === undefined ? {} : { password: s.password }),
  };
  if (s.cluster !== undefined) return { kind: 'cluster', nodes: clusterNodes, ...auth, tls: s.tls === true };
  if (s.sentinels !== undefined) {
    return {
      kind: 'sentinel',
      sentinels,
      name: s.sentinelName!,
      ...auth,
      ...(s.sentinelPassword === undefined ? {} : { sentinelPassword: s.sentinelPassword }),
      tls: s.tls === true,
    };
  }
  return { kind: 'url', url: s.url ?? defaultUrl };
}

/** Where the connection goes, for logs: never a password. */
export function describeRedisTarget(target: RedisTarget): string {
  const spec: RedisConnectionSpec = typeof target === 'string' ? { kind: 'url', url: target } : target;
  const list = (nodes: readonly RedisNodeAddress[]) =>
    nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)).join(',');
  switch (spec.kind) {
    case 'url':
      try {
        const url = new URL(spec.url);
        return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
      } catch {
        return 'redis (unparsable URL)';
      }
    case 'cluster':
      return `cluster ${list(spec.nodes)}${spec.tls ? ' (TLS)' : ''}`;
    case 'sentinel':
      return `sentinel ${spec.name} via ${list(spec.sentinels)}${spec.tls ? ' (TLS)' : ''}`;
  }
}

/**
 * The MAILROOM_REDIS_* variables of `env` as a target, for command-line tools that take no schema of their
 * own: the URL as a string, a cluster or Sentinel as a spec. `fallbackUrl` (e.g. a generic REDIS_URL)
 * applies only when no MAILROOM_REDIS_* connection variable is set. Throws ConfigError naming every problem.
 */
export function redisTargetFromEnv(env: NodeJS.ProcessEnv, fallbackUrl?: string): RedisTarget {
  const read = (name: string) => (env[name] === '' ? undefined : env[name]);
  const issues: FieldIssue[] = [];
  const tls = read('MAILROOM_REDIS_TLS');
  if (tls !== undefined && tls !== 'true' && tls !== 'false') {
    issues.push({ field: 'MAILROOM_REDIS_TLS', message: `must be one of true, false (got "${tls}")` });
  }
  const cluster = read('MAILROOM_REDIS_CLUSTER');
  const sentinels = read('MAILROOM_REDIS_SENTINELS');
  const url =
    read('MAILROOM_REDIS_URL') ??
    (cluster === undefined && sentinels === undefined ? fallbackUrl : undefined);
  const spec = readRedisConnectionSpec(
    {
      url: url === '' ? undefined : url,
      cluster,
      sentinels,
      sentinelName: read('MAILROOM_REDIS_SENTINEL_NAME'),
      username: read('MAILROOM_REDIS_USERNAME'),
      password: read('MAILROOM_REDIS_PASSWORD'),
      tls: tls === 'true' ? true : undefined,
      sentinelPassword: read('MAILROOM_REDIS_SENTINEL_PASSWORD'),
    },
    issues,
  );
  if (spec === undefined || issues.length > 0) throw new ConfigError(issues);
  return spec.kind === 'url' ? spec.url : spec;
}
