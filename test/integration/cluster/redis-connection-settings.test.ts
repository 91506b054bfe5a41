import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { loadApiConfig } from '@mailroom/api';
import { ConfigError } from '@mailroom/core';
import {
  LuaScript,
  LuaScriptRoutingError,
  createRedisConnection,
  describeRedisTarget,
  parseRedisNodes,
  redisTargetFromEnv,
} from '@mailroom/queue';
import { loadWorkerConfig } from '@mailroom/worker';

const BASE = { MAILROOM_SMTP_HOST: 'relay.example' };

function issuesOf(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.field}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('Redis connection settings: one URL, a cluster, or Sentinel', () => {
  it('parses seed lists, bracketed IPv6 included, and refuses anything else', () => {
    assert.deepEqual(parseRedisNodes('10.0.0.1:7000, redis-2.internal:7001,[::1]:7002'), [
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-2.internal', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    for (const bad of ['', 'host', 'host:0', 'host:65536', 'host:70000', 'a:1,,b:2', 'a b:1', '::1:7000']) {
      assert.equal(parseRedisNodes(bad), undefined, bad);
    }
  });

  it('the worker keeps the URL as before when nothing else is set', () => {
    assert.deepEqual(loadWorkerConfig(BASE).redis, { kind: 'url', url: 'redis://127.0.0.1:6379' });
    const config = loadWorkerConfig({ ...BASE, MAILROOM_REDIS_URL: 'rediss://u:p@r.example:6380/2' });
    assert.deepEqual(config.redis, { kind: 'url', url: 'rediss://u:p@r.example:6380/2' });
    assert.equal(config.redisUrl, 'rediss://u:p@r.example:6380/2');
  });

  it('the worker reads a cluster and a Sentinel, with credentials and TLS', () => {
    assert.deepEqual(
      loadWorkerConfig({
        ...BASE,
        MAILROOM_REDIS_CLUSTER: 'c1:7000,c2:7000',
        MAILROOM_REDIS_PASSWORD: 'secret',
        MAILROOM_REDIS_TLS: 'true',
      }).redis,
      {
        kind: 'cluster',
        nodes: [
          { host: 'c1', port: 7000 },
          { host: 'c2', port: 7000 },
        ],
        password: 'secret',
        tls: true,
      },
    );
    assert.deepEqual(
      loadWorkerConfig({
        ...BASE,
        MAILROOM_REDIS_SENTINELS: 's1:26379,s2:26379',
        MAILROOM_REDIS_SENTINEL_NAME: 'mymaster',
        MAILROOM_REDIS_USERNAME: 'mailroom',
        MAILROOM_REDIS_PASSWORD: 'secret',
        MAILROOM_REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      }).redis,
      {
        kind: 'sentinel',
        sentinels: [
          { host: 's1', port: 26379 },
          { host: 's2', port: 26379 },
        ],
        name: 'mymaster',
        username: 'mailroom',
        password: 'secret',
        sentinelPassword: 'sentinel-secret',
        tls: false,
      },
    );
  });

  it('refuses contradictory or incomplete settings, naming each variable', () => {
    assert.deepEqual(
      issuesOf(() =>
        loadWorkerConfig({ ...BASE, MAILROOM_REDIS_URL: 'redis://a:1', MAILROOM_REDIS_CLUSTER: 'c:1' }),
      ),
      [
        'MAILROOM_REDIS_CLUSTER: set only one of MAILROOM_REDIS_URL, MAILROOM_REDIS_CLUSTER and MAILROOM_REDIS_SENTINELS (MAILROOM_REDIS_URL and MAILROOM_REDIS_CLUSTER are set)',
      ],
    );
    assert.deepEqual(
      issuesOf(() => loadWorkerConfig({ ...BASE, MAILROOM_REDIS_SENTINELS: 's:26379' })),
      ['MAILROOM_REDIS_SENTINEL_NAME: is required with MAILROOM_REDIS_SENTINELS'],
    );
    assert.deepEqual(
      issuesOf(() => loadWorkerConfig({ ...BASE, MAILROOM_REDIS_PASSWORD: 'p' })),
      [
        'MAILROOM_REDIS_PASSWORD: applies to MAILROOM_REDIS_CLUSTER and MAILROOM_REDIS_SENTINELS only (a URL carries its own: rediss://user:password@host:port)',
      ],
    );
    assert.deepEqual(
      issuesOf(() => loadWorkerConfig({ ...BASE, MAILROOM_REDIS_SENTINEL_NAME: 'mymaster' })),
      ['MAILROOM_REDIS_SENTINEL_NAME: applies to MAILROOM_REDIS_SENTINELS only'],
    );
    const bad = issuesOf(() => loadWorkerConfig({ ...BASE, MAILROOM_REDIS_CLUSTER: 'c1:7000,c2' }));
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /^MAILROOM_REDIS_CLUSTER: must be host:port\[,host:port\.\.\.\]/);
  });

  it('the API reads the same settings and never echoes a Redis password', () => {
    const pepper = 'p'.repeat(32);
    assert.deepEqual(
      loadApiConfig({ MAILROOM_API_KEY_PEPPER: pepper, MAILROOM_REDIS_CLUSTER: 'c1:7000' }).redis,
      { kind: 'cluster', nodes: [{ host: 'c1', port: 7000 }], tls: false },
    );
    const issues = issuesOf(() =>
      loadApiConfig({ MAILROOM_API_KEY_PEPPER: pepper, MAILROOM_REDIS_PASSWORD: 'hunter2-secret' }),
    );
    assert.equal(issues.length, 1);
    assert.ok(!issues[0]!.includes('hunter2'), issues[0]);
  });

  it('command-line tools: MAILROOM_REDIS_* first, REDIS_URL only when none is set', () => {
    assert.equal(redisTargetFromEnv({}, undefined), 'redis://127.0.0.1:6379');
    assert.equal(redisTargetFromEnv({}, 'redis://fallback:1'), 'redis://fallback:1');
    assert.equal(
      redisTargetFromEnv({ MAILROOM_REDIS_URL: 'redis://m:2' }, 'redis://fallback:1'),
      'redis://m:2',
    );
    assert.deepEqual(redisTargetFromEnv({ MAILROOM_REDIS_CLUSTER: 'c:1' }, 'redis://fallback:1'), {
      kind: 'cluster',
      nodes: [{ host: 'c', port: 1 }],
      tls: false,
    });
    assert.throws(
      () => redisTargetFromEnv({ MAILROOM_REDIS_CLUSTER: 'c:1', MAILROOM_REDIS_TLS: 'yes' }),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'MAILROOM_REDIS_TLS',
    );
  });

  it('a URL opens exactly the single-node client as before; a cluster spec a Cluster with per-node options', () => {
    const single = createRedisConnection('redis://127.0.0.1:6390/3', {
      lazyConnect: true,
      maxRetriesPerRequest: null,
      connectionName: 'x',
    });
    assert.ok(single instanceof Redis);
    assert.equal(single.options.port, 6390);
    assert.equal(single.options.db, 3);
    assert.equal(single.options.maxRetriesPerRequest, null);
    assert.equal(single.options.connectionName, 'x');
    single.disconnect();

    const cluster = createRedisConnection(
      { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }], password: 'pw', tls: false },
      { lazyConnect: true, maxRetriesPerRequest: null, enableOfflineQueue: false, connectionName: 'w' },
    );
    assert.ok(cluster instanceof Cluster);
    assert.equal(cluster.options.lazyConnect, true);
    assert.equal(cluster.options.enableOfflineQueue, false, 'the offline queue is the cluster-wide one');
    assert.equal(cluster.options.redisOptions?.password, 'pw');
    assert.equal(cluster.options.redisOptions?.connectionName, 'w');
    assert.equal('enableOfflineQueue' in (cluster.options.redisOptions ?? {}), false);
    assert.ok((cluster.options.maxRedirections ?? 0) >= 100, 'waiting processes ride through a failover');
    cluster.disconnect();

    const failFast = createRedisConnection(
      { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }], tls: false },
      { lazyConnect: true, maxRetriesPerRequest: 1 },
    ) as Cluster;
    assert.equal(failFast.options.maxRedirections, 16, "ioredis' default for fail-fast processes");
    failFast.disconnect();
  });

  it('a script that declares no key and names no hash-tagged prefix first is refused on a cluster', async () => {
    const cluster = createRedisConnection(
      { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }], tls: false },
      { lazyConnect: true },
    );
    try {
      await assert.rejects(
        new LuaScript('noKeys', 'return 1').run(cluster, [], ['no-tag-here']),
        LuaScriptRoutingError,
      );
    } finally {
      cluster.disconnect();
    }
  });

  it('logs name where Redis is, never a password', () => {
    assert.equal(describeRedisTarget('rediss://user:hunter2@r.example:6380/2'), 'rediss://r.example:6380/2');
    assert.equal(
      describeRedisTarget({
        kind: 'sentinel',
        sentinels: [{ host: '::1', port: 26379 }],
        name: 'm',
        password: 'hunter2',
        tls: true,
      }),
      'sentinel m via [::1]:26379 (TLS)',
    );
  });
});
