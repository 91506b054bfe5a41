import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '@mailroom/core';
import { parseRoutingConfig, RelayRouter, type RelayHandle } from '@mailroom/worker';
import type { RateLimiter } from '@mailroom/queue';
import type { Sender } from '@mailroom/smtp';
import { RelayCircuit } from '@mailroom/worker';

const SHARED = { connectionTimeoutMs: 1000, greetingTimeoutMs: 1000, socketTimeoutMs: 1000 };

function issues(doc: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseRoutingConfig(doc, env, SHARED);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map((i) => `${i.field}: ${i.message}`);
  }
  assert.fail('expected a ConfigError');
}

const relay = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  host: '127.0.0.1',
  port: 2525,
  tls: 'none',
  ...extra,
});

describe('relays file', () => {
  it('reads relays, groups and limits, with safe defaults', () => {
    const config = parseRoutingConfig(
      {
        relays: [relay('ses', { weight: 3, limits: { perSecond: 14, perDay: 50000 } }), relay('backup')],
        domainGroups: { gmail: { domains: ['Gmail.com', 'googlemail.com'], limits: { perSecond: 20 } } },
      },
      { SES_PASS: 'x' },
      SHARED,
    );
    assert.equal(config.relays.length, 2);
    assert.equal(config.relays[0]!.weight, 3);
    assert.equal(config.relays[0]!.verifyCertificates, true, 'certificates verified unless turned off');
    assert.deepEqual(config.relays[0]!.limits, {
      perSecond: 14,
      quotas: [{ limit: 50000, windowSeconds: 86400 }],
    });
    assert.deepEqual(config.domainGroups[0]!.domains, ['gmail.com', 'googlemail.com']);
    assert.equal(config.ungrouped.scope, 'per-domain');
  });

  it('names the path of every problem at once', () => {
    const found = issues({
      relays: [
        relay('Bad Name'),
        relay('ok', { port: 0, limits: { perSecond: -1 } }),
        relay('auth', { tls: 'starttls', user: 'u', passEnv: 'MISSING_PASS' }),
      ],
    });
    assert.ok(
      found.some((i) => i.startsWith('MAILROOM_RELAYS_FILE relays[0].name:')),
      found.join('\n'),
    );
    assert.ok(
      found.some((i) => i.startsWith('MAILROOM_RELAYS_FILE relays[1].port:')),
      found.join('\n'),
    );
    assert.ok(found.some((i) => i.startsWith('MAILROOM_RELAYS_FILE relays[1].limits.perSecond:')));
  });

  it('refuses a password env variable that is not set, AUTH without TLS, duplicate names, a domain in two groups', () => {
    const found = issues({
      relays: [
        relay('a', { tls: 'starttls', user: 'u', passEnv: 'MISSING_PASS' }),
        relay('a', { user: 'u', pass: 'p' }),
      ],
      domainGroups: { one: { domains: ['x.test'] }, two: { domains: ['x.test'] } },
    });
    assert.ok(found.includes('MAILROOM_RELAYS_FILE relays[0].passEnv: names MISSING_PASS, which is not set'));
    assert.ok(found.includes('MAILROOM_RELAYS_FILE relays[1].name: "a" is used twice'));
    assert.ok(found.some((i) => i.startsWith('MAILROOM_RELAYS_FILE relays[1].tls: AUTH over a connection')));
    assert.ok(found.some((i) => i.includes('x.test is already in group one')));
  });

  it('needs a relay without route rules, for the mail no rule matches', () => {
    const found = issues({ relays: [relay('only', { route: { senderDomains: ['a.test'] } })] });
    assert.ok(
      found.some((i) => i.startsWith('MAILROOM_RELAYS_FILE relays:')),
      found.join('\n'),
    );
  });
});

const fakeSender = {} as Sender;
const noLimiter = {} as RateLimiter;
function handles(config: ReturnType<typeof parseRoutingConfig>): Omit<RelayHandle, 'scope'>[] {
  return config.relays.map((definition) => ({
    name: definition.name,
    definition,
    sender: fakeSender,
    circuit: new RelayCircuit(definition.name, {
      failureThreshold: 2,
      openMs: 60_000,
      probe: () => Promise.reject(new Error('down')),
    }),
  }));
}

describe('relay routing', () => {
  const config = parseRoutingConfig(
    {
      relays: [
        relay('big', { weight: 3 }),
        relay('small', { weight: 1 }),
        relay('news', { route: { senderDomains: ['news.example.com'], tags: ['newsletter'] } }),
      ],
    },
    {},
    SHARED,
  );

  it('splits by weight exactly (smooth weighted round robin), and routes by sender domain or tag', () => {
    const router = new RelayRouter(config, handles(config), noLimiter);
    const defaults = router.candidates('app.example.com', []);
    assert.deepEqual(
      defaults.map((r) => r.name),
      ['big', 'small'],
    );
    const picks = Array.from({ length: 400 }, () => router.pick(defaults, new Set())!.name);
    assert.equal(picks.filter((p) => p === 'big').length, 300);
    assert.ok(
      !picks.slice(0, 8).join(',').includes('big,big,big,big'),
      'no clumping: ' + picks.slice(0, 8).join(','),
    );
    assert.deepEqual(
      router.candidates('news.example.com', []).map((r) => r.name),
      ['news'],
    );
    assert.deepEqual(
      router.candidates('other.example.com', ['newsletter']).map((r) => r.name),
      ['news'],
    );
    router.stop();
  });

  it('skips relays already tried and relays whose circuit is open; all open means none', () => {
    const hs = handles(config);
    const router = new RelayRouter(config, hs, noLimiter);
    const defaults = router.candidates('app.example.com', []);
    assert.equal(router.pick(defaults, new Set(['big']))!.name, 'small');
    hs[0]!.circuit.failure('connect', 'connection_refused');
    hs[0]!.circuit.failure('connect', 'connection_refused');
    assert.equal(hs[0]!.circuit.state, 'open', 'two connection failures open a threshold-2 circuit');
    for (let i = 0; i < 5; i += 1) assert.equal(router.pick(defaults, new Set())!.name, 'small');
    hs[1]!.circuit.failure('config', 'auth_failed', 60_000);
    assert.equal(router.pick(defaults, new Set()), undefined);
    assert.ok(router.nextOpening(defaults) > Date.now() + 50_000);
    router.stop();
  });
});
