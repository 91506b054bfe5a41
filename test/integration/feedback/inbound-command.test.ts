import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_VERP_LOCAL_PREFIX, type VerpOptions } from '@mailroom/feedback';
import { freePort } from '../../harness/ports.js';
import { killAllChildren, spawnNode } from '../../harness/processes.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { message, testClient } from '../fixtures.js';
import { COMPLAINTS_ADDRESS, corpus, deliver, rewriteSample } from './feedback-corpus.js';

const BIN = fileURLToPath(new URL('../../../../apps/cli/bin/mailroom.js', import.meta.url));
const INBOUND_MODULE = new URL('../../../../apps/cli/dist/inbound-command.js', import.meta.url).href;
const BOUNCES_DOC = fileURLToPath(new URL('../../../../docs/bounces.md', import.meta.url));
const BOUNCE_DOMAIN = 'bounce.mailroom.example';
const SECRET = 'inbound-command-test-secret-0123';
const VERP: VerpOptions = { localPrefix: DEFAULT_VERP_LOCAL_PREFIX, domain: BOUNCE_DOMAIN, secret: SECRET };
const TOKEN = 'inbound-metrics-token-0123456789';

function sample(name: string) {
  const found = corpus().find((entry) => entry.name === name);
  assert.ok(found, `corpus has ${name}`);
  return found;
}

describe('mailroom inbound (the process)', () => {
  let redis: RedisServer;

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await killAllChildren();
    await redis.stop();
  });

  it('prints every configuration problem as MAILROOM_X: reason and exits 1', async () => {
    const missing = spawnNode(BIN, ['inbound'], {
      env: { PATH: process.env.PATH, MAILROOM_INBOUND_PORT: 'twenty-five', MAILROOM_VERP_SECRET: 'short' },
    });
    assert.equal((await missing.exited).code, 1);
    const lines = missing.output().trim().split('\n');
    assert.ok(lines.includes('MAILROOM_BOUNCE_DOMAIN: is required'), missing.output());
    assert.ok(
      lines.some((l) => l.startsWith('MAILROOM_VERP_SECRET: must be at least 16 characters')),
      missing.output(),
    );
    assert.ok(
      lines.some((l) => l.startsWith('MAILROOM_INBOUND_PORT: ')),
      missing.output(),
    );

    const crossed = spawnNode(BIN, ['inbound'], {
      env: {
        PATH: process.env.PATH,
        MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
        MAILROOM_VERP_SECRET: SECRET,
        MAILROOM_COMPLAINTS_ADDRESSES: 'fbl@example.com, not an address',
        MAILROOM_INBOUND_TLS_KEY_FILE: '/nonexistent/key.pem',
        MAILROOM_HTTP_HOST: '0.0.0.0',
      },
    });
    assert.equal((await crossed.exited).code, 1);
    const out = crossed.output();
    assert.match(out, /^MAILROOM_COMPLAINTS_ADDRESSES: /m);
    assert.match(out, /^MAILROOM_INBOUND_TLS_CERT_FILE: .*set together/m);
    assert.match(out, /^MAILROOM_METRICS_TOKEN: is required when MAILROOM_HTTP_HOST \(0\.0\.0\.0\)/m);
    assert.ok(!out.includes(SECRET), 'the secret is never printed');
  });

  it('takes a bounce for an accepted message, counts it in /metrics, and stops on SIGTERM', async () => {
    const smtpPort = await freePort();
    const httpPort = await freePort();
    const child = spawnNode(BIN, ['inbound'], {
      env: {
        PATH: process.env.PATH,
        MAILROOM_REDIS_URL: redis.url,
        MAILROOM_INBOUND_PORT: String(smtpPort),
        MAILROOM_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
        MAILROOM_VERP_SECRET: SECRET,
        MAILROOM_COMPLAINTS_ADDRESSES: COMPLAINTS_ADDRESS,
        MAILROOM_HTTP_PORT: String(httpPort),
        MAILROOM_METRICS_TOKEN: TOKEN,
        MAILROOM_LOG_LEVEL: 'info',
      },
    });
    await child.waitForOutput(/inbound started/, 15_000);
    const base = `http://127.0.0.1:${httpPort}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/metrics`)).status, 401, 'metrics need the token');

    const client = testClient(redis);
    let id: string;
    try {
      const to = 'absent.person@gmail.com';
      const receipt = await client.send(message(to));
      id = receipt.id;
      const bounce = rewriteSample(sample('gmail-5.1.1.eml'), id, VERP);
      const reply = await deliver(smtpPort, [bounce.returnPath], bounce.raw);
      assert.match(reply.response ?? '', /^250 /, reply.errorResponse);
      const refused = await deliver(smtpPort, ['someone@elsewhere.example'], bounce.raw);
      assert.equal(refused.errorCode, 550);

      const status = await client.status(id);
      assert.deepEqual(
        status.history.map((h) => h.outcome),
        ['feedback_hard_bounce'],
      );
      assert.equal((await client.suppressions.get('mailroom.example', to))?.reason, 'hard_bounce');
    } finally {
      await client.close();
    }
    const metrics = await (
      await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).text();
    assert.match(metrics, /mailroom_feedback_events_total\{type="hard_bounce",domain="gmail\.com"\} 1\n/);
    assert.match(metrics, /mailroom_feedback_events_total\{type="complaint",domain="gmail\.com"\} 0\n/);
    assert.match(metrics, /process_cpu_seconds_total/);
    assert.ok(!metrics.includes('@'), 'no address in any metric label');

    child.kill('SIGTERM');
    assert.equal((await child.exited).code, 0);
    const output = child.output();
    assert.match(output, /inbound stopped/);
    assert.match(output, /"msg":"feedback received"/);
    assert.ok(!output.includes('absent.person'), 'no recipient address in info logs');
    assert.ok(!output.includes(SECRET), 'the VERP secret is never logged');
  });

  it("docs/bounces.md's configuration table is the command's schema", async () => {
    const inbound = (await import(INBOUND_MODULE)) as { inboundSettingsTable(): string };
    const table = inbound.inboundSettingsTable();
    assert.ok(table.split('\n').length > 10);
    assert.ok(
      readFileSync(BOUNCES_DOC, 'utf8').includes(`${table}\n`),
      'docs/bounces.md has the current table',
    );
  });
});
