import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import { createTestCertificateAuthority } from '../harness/certs.js';
import type { FaultMode } from '../harness/fault-proxy.js';
import { waitFor } from '../harness/wait-for.js';
import { assertBooksBalance, FaultBed, newsletter } from './fault-bed.js';

const MESSAGES = 600;
/** Few messages per connection, so the pool keeps opening new connections through the proxy. */
const FRESH_CONNECTIONS = { MAILROOM_SMTP_MAX_MESSAGES_PER_CONNECTION: '5' };

/** Runs `MESSAGES` through the proxy, switching it to `mode` for `windowMs` once 100 are delivered. */
async function throughProxyFault(
  bed: FaultBed,
  mode: FaultMode,
  windowMs: number,
): Promise<{ startedAt: number; endedAt: number }> {
  await bed.enqueue(newsletter(MESSAGES, () => 'slow-10-'));
  await bed.startWorkers();
  await bed.delivered(100);
  const startedAt = Date.now();
  bed.proxy!.setMode(mode);
  await new Promise((r) => setTimeout(r, windowMs));
  bed.proxy!.setMode({ kind: 'pass' });
  return { startedAt, endedAt: Date.now() };
}

describe('fault: the RFC 1047 window (the relay got the final dot, its reply was lost)', () => {
  let bed: FaultBed | undefined;
  afterEach(async () => {
    await bed?.stop();
    bed = undefined;
  });

  it('policy resend (default): ambiguous messages are sent again with the same Message-ID, and counted', async () => {
    bed = await FaultBed.start({ workers: 2, proxy: true });
    const window = await throughProxyFault(bed, { kind: 'swallowReplyAfterDot' }, 1500);
    const row = await bed.settle('RFC 1047, policy resend', window);
    assertBooksBalance(row, bed.outputs());
    assert.ok(bed.proxy!.stats.swallowedReplies > 0, 'replies were swallowed');
    assert.ok(row.ambiguous > 0, 'the swallowed replies were counted as ambiguous');
    assert.equal(row.delivered, MESSAGES, 'resent and delivered');
    assert.ok(row.duplicates > 0 && row.duplicates <= row.ambiguous, 'the copies are the counted resends');
    assert.equal(row.bounced, 0);
  });

  it('policy stop (at-most-once): ambiguous messages end as ambiguous and are never sent twice', async () => {
    bed = await FaultBed.start({ workers: 2, proxy: true, workerEnv: { MAILROOM_AMBIGUITY_POLICY: 'stop' } });
    const window = await throughProxyFault(bed, { kind: 'swallowReplyAfterDot' }, 1500);
    const row = await bed.settle('RFC 1047, policy stop', window);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.duplicates, 0, 'at most once');
    const stopped = row.states.ambiguous ?? 0;
    assert.ok(stopped > 0, 'some messages ended ambiguous');
    assert.equal(row.delivered + stopped, MESSAGES);
    assert.equal(row.bounced, 0);
  });
});

describe('fault: SMTP server trouble', () => {
  let bed: FaultBed | undefined;
  afterEach(async () => {
    await bed?.stop();
    bed = undefined;
  });

  it('421/451 bursts: every message retried and delivered once, nothing bounced', async () => {
    bed = await FaultBed.start({ workers: 2 });
    const scripts = ['temp421-2-', 'temp451-3-', 'throttle-2-', 'datafail451-1-', 'ok-'];
    await bed.enqueue(newsletter(MESSAGES, (i) => scripts[i % scripts.length]!));
    await bed.startWorkers();
    const row = await bed.settle('421/451 bursts', undefined);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.equal(row.duplicates, 0);
    assert.equal(row.bounced, 0);
  });

  it('connection reset in the middle of DATA: retried, delivered once', async () => {
    bed = await FaultBed.start({ workers: 2, proxy: true, workerEnv: FRESH_CONNECTIONS });
    // A 2 KB message: resetting after 600 client bytes cuts connections inside the first message's DATA.
    const window = await throughProxyFault(bed, { kind: 'resetAfterClientBytes', bytes: 600 }, 1500);
    const row = await bed.settle('reset mid-DATA', window);
    assertBooksBalance(row, bed.outputs());
    assert.ok(bed.proxy!.stats.resets > 0, 'connections were reset');
    assert.ok(
      bed.workers.some((w) => /message deferred/.test(w.output())),
      'the cut attempts were deferred',
    );
    assert.equal(row.delivered, MESSAGES);
    assert.ok(
      row.recoverySeconds !== null && row.recoverySeconds <= 30,
      `recovered in ${row.recoverySeconds}s`,
    );
  });

  it('greeting stall (a server that accepts and says nothing): timeouts, then delivery', async () => {
    bed = await FaultBed.start({ workers: 2, proxy: true, workerEnv: FRESH_CONNECTIONS });
    const window = await throughProxyFault(bed, { kind: 'blackhole' }, 3000);
    const row = await bed.settle('greeting stall', window);
    assert.ok(
      bed.workers.some((w) => /message deferred|relay unreachable: message held/.test(w.output())),
      'attempts timed out waiting for the greeting and were deferred or held (no attempt spent)',
    );
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.equal(row.duplicates, 0);
    assert.ok(
      row.recoverySeconds !== null && row.recoverySeconds <= 30,
      `recovered in ${row.recoverySeconds}s`,
    );
  });

  it('stall after DATA (never answered): ambiguous attempts until the message expires, no bounce', async () => {
    bed = await FaultBed.start({ workers: 2 });
    const stalledInputs = newsletter(10, () => 'stalldata-');
    const stalled = await bed.enqueue(stalledInputs, { maxAgeMs: 8000 });
    await bed.enqueue(newsletter(MESSAGES, () => 'ok-'));
    await bed.startWorkers();
    const row = await bed.settle('stall after DATA', undefined);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.equal(row.expired, stalled.length, 'the stalled messages expired at their max age');
    assert.ok(row.ambiguous > 0, 'attempts that got no reply to the final dot were counted ambiguous');
    // Every attempt whose whole body reached the server (which then never answered) is ambiguous. An attempt
    // that never got that far (say, its envelope was pipelined behind a stalled transaction) is not.
    let bodiesUnanswered = 0;
    for (const [i, r] of stalled.entries()) {
      const unanswered = bed.sink.unanswered(stalledInputs[i]!.to);
      bodiesUnanswered += unanswered;
      const [ambiguous] = await bed.conn.hmget(`{mailroom}:msg:${r.id}`, 'ambiguous');
      assert.ok(
        Number(ambiguous ?? 0) >= unanswered,
        `${r.id}: ${unanswered} bodies unanswered, ${ambiguous ?? 0} counted ambiguous`,
      );
    }
    assert.ok(bodiesUnanswered > 0, 'some stalled bodies reached the server');
    assert.equal(row.bounced, 0);
  });

  it('a slow server (300 ms per reply to the final dot): everything delivered', async () => {
    bed = await FaultBed.start({ workers: 2 });
    await bed.enqueue(newsletter(200, () => 'slow-300-'));
    await bed.startWorkers();
    const row = await bed.settle('slow server (300 ms)', undefined);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, 200);
    assert.equal(row.duplicates, 0);
  });
});

/** Waits until a worker has tried the relay and logged the failure (a pause or a deferral). */
async function relayFailureLogged(bed: FaultBed, label: string): Promise<void> {
  await waitFor(
    () =>
      bed.workers.some((w) =>
        /relay configuration fault|message deferred|relay unreachable: message held/.test(w.output()),
      ),
    {
      timeoutMs: 20_000,
      what: `a failed attempt against a relay with ${label}`,
    },
  );
}

describe('fault: a relay that is misconfigured or unreachable', () => {
  let bed: FaultBed | undefined;
  const extraSinks: Sink[] = [];
  afterEach(async () => {
    await bed?.stop();
    bed = undefined;
    for (const s of extraSinks.splice(0)) await s.close();
  });

  it('TLS failures, bad certificates, STARTTLS stripped, AUTH refused, refused port, unresolvable host: no delivery, no plaintext, no bounce', async () => {
    const ca = await createTestCertificateAuthority();
    const leaf = await ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const expired = await ca.issue({
      commonName: 'localhost',
      altNames: ['localhost', '127.0.0.1'],
      expired: true,
    });
    const auth = { user: 'mailroom', pass: 'right-password' };
    bed = await FaultBed.start({ workers: 1, sink: { tls: leaf, auth } });
    const caFile = join(bed.redis.dir, 'relay-ca.pem');
    writeFileSync(caFile, ca.cert);
    const good = {
      MAILROOM_SMTP_TLS: 'starttls',
      MAILROOM_SMTP_CA_FILE: caFile,
      MAILROOM_SMTP_USER: auth.user,
      MAILROOM_SMTP_PASS: auth.pass,
    };
    const expiredSink = await startSink({ tls: expired, auth });
    const strippedSink = await startSink({ tls: leaf, auth, hideStartTls: true });
    extraSinks.push(expiredSink, strippedSink);

    const cases: [string, Record<string, string>][] = [
      ['implicit TLS against a STARTTLS port (handshake fails)', { ...good, MAILROOM_SMTP_TLS: 'tls' }],
      ['an untrusted certificate', { ...good, MAILROOM_SMTP_CA_FILE: '' }],
      ['a certificate for another name', { ...good, MAILROOM_SMTP_TLS_SERVERNAME: 'relay.other.test' }],
      ['an expired certificate', { ...good, MAILROOM_SMTP_PORT: String(expiredSink.port) }],
      ['STARTTLS stripped', { ...good, MAILROOM_SMTP_PORT: String(strippedSink.port) }],
      ['wrong AUTH credentials', { ...good, MAILROOM_SMTP_PASS: 'wrong-password' }],
      ['a refused port', { ...good, MAILROOM_SMTP_PORT: '1' }],
      ['a host that does not resolve', { ...good, MAILROOM_SMTP_HOST: 'relay.does-not-exist.invalid' }],
    ];
    await bed.startWorkers();
    let n = 0;
    for (const [label, env] of cases) {
      const fixed = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
      await bed.restartAll(fixed);
      await bed.enqueue(newsletter(10, (i) => `ok-case${n}x${i}-`));
      n += 1;
      await relayFailureLogged(bed, label);
      assert.equal(bed.sink.messages.length, 0, `nothing delivered with ${label}`);
      assert.equal(
        expiredSink.messages.length + strippedSink.messages.length,
        0,
        `nothing sent with ${label}`,
      );
      assert.equal(bed.sink.messages.filter((m) => !m.secure).length, 0, 'nothing in plaintext');
      const bounced: number = Number((await bed.conn.hget('{mailroom}:stats', 'bounced')) ?? 0);
      assert.equal(bounced, 0, `nothing bounced with ${label}`);
    }
    await bed.restartAll(good);
    const row = await bed.settle('relay misconfigured (8 kinds), then fixed', undefined);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.bounced, 0);
    assert.equal(row.delivered, row.accepted, 'every message delivered once the relay settings were right');
    assert.ok(
      bed.sink.messages.every((m) => m.secure && m.authUser === auth.user),
      'over TLS with AUTH',
    );
  });
});
