import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import type { RelayConfig } from '@mailroom/smtp';
import { startFaultProxy, type FaultProxy } from '../../harness/fault-proxy.js';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { freePort } from '../../harness/ports.js';
import {
  CASE_TIMEOUT_MS,
  SENDER_KINDS,
  attempt,
  buildSender,
  largeMessage,
  relayConfig,
  type Sender,
  type SenderKind,
} from './conformance-kit.js';

/**
 * Network faults between the sender and a real sink, the same test bodies for both senders: a connection
 * reset while the body is on its way, the reply to the final dot lost (RFC 1047), stalls and refusals.
 */

/** Larger than every socket buffer between the sender and the sink, so a reset mid-body precedes the dot. */
const BODY_BEYOND_BUFFERS_BYTES = 24 * 1024 * 1024;
/** Short timeouts for the stall tests (the configured value is what must end the wait). */
const SHORT_TIMEOUT_MS = 400;
/**
 * The inactivity limit of the stall-after-body case: long enough that opening the connection on a busy
 * machine never runs into it (the case is about the wait after the final dot, not the greeting).
 */
const STALL_TIMEOUT_MS = 1500;

let baseline: string[];

before(() => {
  baseline = snapshotResources();
});

after(async () => {
  await assertNoResourceLeaks(baseline);
});

/** A sink behind a fault proxy and a sender of `kind` to the proxy; everything is closed afterwards. */
async function throughProxy(
  kind: SenderKind,
  overrides: Partial<RelayConfig>,
  body: (env: { sink: Sink; proxy: FaultProxy; sender: Sender }) => Promise<void>,
): Promise<void> {
  const sink = await startSink();
  const proxy = await startFaultProxy({ targetPort: sink.port });
  const sender = buildSender(kind, relayConfig(proxy.port, overrides));
  try {
    await body({ sink, proxy, sender });
  } finally {
    sender.close();
    await proxy.close();
    await sink.close();
  }
}

for (const kind of SENDER_KINDS) {
  void describe(`${kind} sender: faults`, () => {
    void it(
      'connection reset in the middle of the body: not delivered, transient, body not written',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, {}, async ({ sink, proxy, sender }) => {
          proxy.setMode({ kind: 'resetAfterClientBytes', bytes: 256 * 1024 });
          const result = await attempt(
            sender,
            `mallory-${kind}@example.test`,
            largeMessage(BODY_BEYOND_BUFFERS_BYTES),
          );
          assert.equal(result.outcome, 'transient', JSON.stringify(result.observation));
          assert.equal(result.reason, 'connection_lost');
          assert.equal(result.bodyWritten, false);
          assert.equal(result.observation.responseCode, undefined);
          assert.equal(proxy.stats.resets, 1);
          assert.equal(sink.messages.length, 0, 'the relay stored nothing');
        });
      },
    );

    void it(
      'reply to the final dot lost: ambiguous, body written, no reply code, and the relay has it',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, {}, async ({ sink, proxy, sender }) => {
          proxy.setMode({ kind: 'swallowReplyAfterDot' });
          const result = await attempt(sender, `niaj-${kind}@example.test`);
          assert.equal(result.outcome, 'ambiguous', JSON.stringify(result.observation));
          assert.equal(result.reason, 'connection_lost_after_data');
          assert.equal(result.bodyWritten, true);
          assert.equal(result.observation.responseCode, undefined);
          assert.ok(['ECONNECTION', 'ESOCKET', 'ETIMEDOUT'].includes(result.observation.code ?? ''));
          assert.equal(proxy.stats.swallowedReplies, 1);
          await sink.waitForMessages(1);
          assert.equal(sink.messages[0]?.rcptTo[0], `niaj-${kind}@example.test`);
          // The next message goes over a new connection.
          proxy.setMode({ kind: 'pass' });
          assert.equal((await attempt(sender, `niaj-next-${kind}@example.test`)).outcome, 'delivered');
        });
      },
    );

    void it(
      'a relay that never greets: greetingTimeoutMs ends the wait, transient greeting_timeout',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, { greetingTimeoutMs: SHORT_TIMEOUT_MS }, async ({ sink, proxy, sender }) => {
          proxy.setMode({ kind: 'blackhole' });
          const result = await attempt(sender, `olivia-${kind}@example.test`);
          assert.equal(result.outcome, 'transient', JSON.stringify(result.observation));
          assert.equal(result.reason, 'greeting_timeout');
          assert.equal(result.observation.code, 'ETIMEDOUT');
          assert.equal(sink.messages.length, 0);
        });
      },
    );

    void it(
      'a relay that stalls after the body: socketTimeoutMs ends the wait, ambiguous timeout_after_data',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, { socketTimeoutMs: STALL_TIMEOUT_MS }, async ({ sink, sender }) => {
          const result = await attempt(sender, `stalldata-${kind}@example.test`);
          assert.equal(result.outcome, 'ambiguous', JSON.stringify(result.observation));
          assert.equal(result.reason, 'timeout_after_data');
          assert.equal(result.observation.code, 'ETIMEDOUT');
          assert.equal(result.bodyWritten, true);
          assert.equal(sink.messages.length, 0, 'the stalling relay never stored it');
        });
      },
    );

    void it(
      'connection closed before the greeting: transient connection_lost; the next message gets a new connection',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, { maxConnections: 1 }, async ({ sink, proxy, sender }) => {
          proxy.setMode({ kind: 'closeBeforeGreeting' });
          const result = await attempt(sender, `peggy-${kind}@example.test`);
          assert.equal(result.outcome, 'transient', JSON.stringify(result.observation));
          assert.equal(result.reason, 'connection_lost');
          proxy.setMode({ kind: 'pass' });
          assert.equal((await attempt(sender, `peggy-next-${kind}@example.test`)).outcome, 'delivered');
          assert.equal(proxy.stats.connections, 2);
          assert.deepEqual(
            sink.messages.map((m) => m.rcptTo[0]),
            [`peggy-next-${kind}@example.test`],
          );
        });
      },
    );

    void it(
      'a connection reset as soon as it is accepted: transient, nothing delivered',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, {}, async ({ sink, proxy, sender }) => {
          proxy.setMode({ kind: 'refuse' });
          const result = await attempt(sender, `rupert-${kind}@example.test`);
          assert.equal(result.outcome, 'transient', JSON.stringify(result.observation));
          assert.equal(result.reason, 'connection_lost');
          assert.equal(sink.messages.length, 0);
        });
      },
    );

    void it(
      'a port nobody listens on: transient connection_refused',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sender = buildSender(kind, relayConfig(await freePort()));
        try {
          const result = await attempt(sender, `sybil-${kind}@example.test`);
          assert.equal(result.outcome, 'transient', JSON.stringify(result.observation));
          assert.equal(result.reason, 'connection_refused');
          assert.equal(result.bodyWritten, false);
          await assert.rejects(sender.verify());
        } finally {
          sender.close();
        }
      },
    );

    void it(
      'a connection lost mid-session fails only its message; the next one gets a new connection',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, { maxConnections: 1 }, async ({ sink, proxy, sender }) => {
          assert.equal((await attempt(sender, `trent-1-${kind}@example.test`)).outcome, 'delivered');
          const dropped = await attempt(sender, `drop-trent-${kind}@example.test`);
          assert.equal(dropped.outcome, 'transient', JSON.stringify(dropped.observation));
          assert.equal((await attempt(sender, `trent-2-${kind}@example.test`)).outcome, 'delivered');
          assert.equal(proxy.stats.connections, 2);
          assert.deepEqual(
            sink.messages.map((m) => m.rcptTo[0]),
            [`trent-1-${kind}@example.test`, `trent-2-${kind}@example.test`],
          );
        });
      },
    );

    void it(
      'close(): every send settles, queued ones rejected as a lost connection, nothing twice',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await throughProxy(kind, { maxConnections: 1 }, async ({ sink, proxy, sender }) => {
          proxy.setMode({ kind: 'latency', ms: 20 });
          const sends = Array.from({ length: 5 }, (_, i) =>
            attempt(sender, `victor-${i}-${kind}@example.test`),
          );
          sender.close();
          const results = await Promise.all(sends);
          const delivered = results.filter((r) => r.outcome === 'delivered');
          const rejected = results.filter((r) => r.outcome !== 'delivered');
          assert.equal(delivered.length + rejected.length, 5);
          assert.ok(rejected.length >= 4, `${rejected.length} rejected`);
          for (const r of rejected) {
            assert.equal(r.observation.code, 'ECONNECTION', JSON.stringify(r.observation));
            assert.equal(r.observation.responseCode, undefined);
            assert.equal(r.outcome, 'transient');
            assert.equal(r.bodyWritten, false);
          }
          assert.equal(sender.sending, 0);
          assert.equal(sink.messages.length, delivered.length);
          await assert.rejects(
            sender.send({ from: 'a@mailroom.test', to: 'b@example.test' }, Buffer.from('x')),
          );
        });
      },
    );
  });
}
