import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OutcomeClass } from '@mailroom/core';
import { startSink } from '@mailroom/sink';
import { SmtpSendError } from '@mailroom/smtp';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import {
  CASE_TIMEOUT_MS,
  SENDER_KINDS,
  attempt,
  buildSender,
  newMessageId,
  relayConfig,
  sha256,
  testMessage,
  type SenderKind,
} from './conformance-kit.js';

/**
 * Every reply class the sink can script, the SIZE limit, dot-stuffing and pooling, with the same test
 * bodies for both senders: what `classifySmtpOutcome` makes of each sender's report must be the same, and
 * the sink must have recorded the same thing.
 */

interface ScriptCase {
  /** Local part of the recipient: the sink's script. */
  readonly script: string;
  readonly outcome: OutcomeClass;
  /** Acceptable reasons (the first is what the pipelining sender reports). */
  readonly reasons: readonly string[];
  /** Whether the sink stores the message. */
  readonly stored: boolean;
  readonly bodyWritten: boolean;
}

const SCRIPTS: readonly ScriptCase[] = [
  { script: 'ok', outcome: 'delivered', reasons: ['delivered'], stored: true, bodyWritten: true },
  // nodemailer drops the 421 text when the connection had carried a message before (its requeue path).
  {
    script: 'temp421-1',
    outcome: 'transient',
    reasons: ['service_unavailable', 'connection_lost'],
    stored: false,
    bodyWritten: false,
  },
  {
    script: 'temp451-1',
    outcome: 'transient',
    reasons: ['temporary_failure'],
    stored: false,
    bodyWritten: false,
  },
  { script: 'throttle-1', outcome: 'throttled', reasons: ['throttled'], stored: false, bodyWritten: false },
  { script: 'bounce', outcome: 'permanent', reasons: ['mailbox_unknown'], stored: false, bodyWritten: false },
  { script: 'full', outcome: 'transient', reasons: ['mailbox_full'], stored: false, bodyWritten: false },
  {
    script: 'toobig',
    outcome: 'permanent',
    reasons: ['message_too_large'],
    stored: false,
    bodyWritten: true,
  },
  {
    script: 'datafail451-1',
    outcome: 'transient',
    reasons: ['temporary_failure'],
    stored: false,
    bodyWritten: true,
  },
  { script: 'slow-150', outcome: 'delivered', reasons: ['delivered'], stored: true, bodyWritten: true },
  { script: 'drop', outcome: 'transient', reasons: ['connection_lost'], stored: false, bodyWritten: false },
  {
    script: 'acceptdrop',
    outcome: 'ambiguous',
    reasons: ['connection_lost_after_data'],
    stored: true,
    bodyWritten: true,
  },
  {
    script: 'ok-after-faults',
    outcome: 'delivered',
    reasons: ['delivered'],
    stored: true,
    bodyWritten: true,
  },
];

let baseline: string[];

before(() => {
  baseline = snapshotResources();
});

after(async () => {
  await assertNoResourceLeaks(baseline);
});

const seen = new Map<SenderKind, Map<string, OutcomeClass>>();

for (const kind of SENDER_KINDS) {
  void describe(`${kind} sender: replies, SIZE, dot-stuffing, pooling`, () => {
    void it(
      'every scripted reply class gets the expected outcome, and the sink stored exactly the accepted ones',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink();
        const sender = buildSender(kind, relayConfig(sink.port, { maxConnections: 1 }));
        const outcomes = new Map<string, OutcomeClass>();
        try {
          for (const c of SCRIPTS) {
            const result = await attempt(sender, `${c.script}-${kind}@example.test`);
            const facts = `${c.script}: ${JSON.stringify(result.observation)}`;
            assert.equal(result.outcome, c.outcome, facts);
            assert.ok(c.reasons.includes(result.reason), `reason ${result.reason} for ${facts}`);
            assert.equal(result.bodyWritten, c.bodyWritten, `bodyWritten for ${facts}`);
            if (c.outcome === 'ambiguous') assert.equal(result.observation.responseCode, undefined);
            outcomes.set(c.script, result.outcome);
          }
          const stored = sink.messages.map((m) => m.rcptTo.join(','));
          const expected = SCRIPTS.filter((c) => c.stored).map((c) => `${c.script}-${kind}@example.test`);
          assert.deepEqual(stored, expected);
          assert.equal(sink.messages.find((m) => m.rcptTo[0]?.startsWith('acceptdrop'))?.replied, false);
          seen.set(kind, outcomes);
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );

    void it(
      'a retried transient failure is delivered on the next attempt',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink();
        const sender = buildSender(kind, relayConfig(sink.port));
        try {
          const to = `temp451-1-retry-${kind}@example.test`;
          assert.equal((await attempt(sender, to)).outcome, 'transient');
          assert.equal((await attempt(sender, to)).outcome, 'delivered');
          assert.equal(sink.attempts(to), 2);
          assert.equal(sink.messages.length, 1);
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );

    void it(
      'a message larger than the relay SIZE is permanent (message_too_large) and not delivered',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink({ maxMessageBytes: 4096 });
        const sender = buildSender(kind, relayConfig(sink.port));
        try {
          const big = testMessage({ body: `${'x'.repeat(70)}\r\n`.repeat(120) });
          assert.ok(big.length > 4096);
          const result = await attempt(sender, `judy-${kind}@example.test`, big);
          assert.equal(result.outcome, 'permanent', JSON.stringify(result.observation));
          assert.equal(result.reason, 'message_too_large');
          // Refused against the advertised SIZE before anything was sent: no reply, no body.
          assert.equal(result.observation.responseCode, undefined);
          assert.equal(result.observation.code, 'EMESSAGE');
          assert.equal(result.bodyWritten, false);
          const small = await attempt(sender, `judy-small-${kind}@example.test`);
          assert.equal(small.outcome, 'delivered', 'the connection is still good for the next message');
          assert.deepEqual(
            sink.messages.map((m) => m.rcptTo[0]),
            [`judy-small-${kind}@example.test`],
          );
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );

    void it(
      'dot-stuffing: lines ".", "..", ".x" arrive byte for byte',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink({ keepRaw: true });
        const sender = buildSender(kind, relayConfig(sink.port));
        try {
          const bodies = [
            '.\r\n..\r\n.x\r\n...\r\nmiddle . line\r\n. leading dot and space\r\n',
            'first\r\n.\r\n',
            '..\r\n',
            'no final line break\r\n.last',
          ];
          const sent = bodies.map((body) => testMessage({ body, messageId: newMessageId() }));
          for (const raw of sent) {
            const result = await attempt(sender, `ken-${kind}@example.test`, raw);
            assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          }
          assert.equal(sink.messages.length, sent.length);
          sent.forEach((raw, i) => {
            const record = sink.messages[i];
            // A body that does not end in CRLF is given one, as SMTP requires (RFC 5321 section 4.1.1.4).
            const expected =
              raw.subarray(-2).toString() === '\r\n' ? raw : Buffer.concat([raw, Buffer.from('\r\n')]);
            assert.equal(record?.raw?.toString('latin1'), expected.toString('latin1'));
            assert.equal(record?.sha256, sha256(expected));
          });
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );

    void it(
      '100 messages over 5 pooled connections all arrive exactly once',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink();
        const sender = buildSender(kind, relayConfig(sink.port, { maxConnections: 5 }));
        try {
          const ids = Array.from({ length: 100 }, () => newMessageId());
          const results = await Promise.all(
            ids.map((messageId, i) =>
              attempt(sender, `pool-${i}-${kind}@example.test`, testMessage({ messageId })),
            ),
          );
          for (const result of results)
            assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          assert.equal(sender.sending, 0);
          assert.equal(sink.messages.length, 100);
          assert.deepEqual(sink.messages.map((m) => m.messageId).sort(), [...ids].sort());
          const sessions = new Set(sink.messages.map((m) => m.sessionId));
          assert.ok(sessions.size <= 5, `${sessions.size} sessions`);
          assert.ok(sink.stats.connections <= 5, `${sink.stats.connections} connections`);
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );

    void it(
      'maxMessagesPerConnection: connections are replaced after that many messages',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink();
        const sender = buildSender(
          kind,
          relayConfig(sink.port, { maxConnections: 3, maxMessagesPerConnection: 10 }),
        );
        try {
          const results = await Promise.all(
            Array.from({ length: 60 }, (_, i) => attempt(sender, `rotate-${i}-${kind}@example.test`)),
          );
          for (const result of results)
            assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
          assert.equal(sink.messages.length, 60);
          const perSession = new Map<string, number>();
          for (const m of sink.messages) perSession.set(m.sessionId, (perSession.get(m.sessionId) ?? 0) + 1);
          assert.ok(Math.max(...perSession.values()) <= 10, JSON.stringify([...perSession.values()]));
          assert.ok(perSession.size >= 6);
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );
  });
}

void describe('both senders', () => {
  void it('classify every scripted reply the same way', { timeout: CASE_TIMEOUT_MS }, () => {
    const [first, second] = SENDER_KINDS.map((kind) => seen.get(kind));
    assert.ok(first && second, 'both senders ran the reply table');
    assert.equal(first.size, SCRIPTS.length);
    assert.deepEqual([...second.entries()], [...first.entries()]);
  });
});

for (const kind of SENDER_KINDS) {
  void describe(`${kind} sender: beforeFinalDot`, () => {
    void it(
      'runs after the body and before the final dot: the relay does not have the message yet',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink();
        const sender = buildSender(kind, relayConfig(sink.port));
        try {
          let calls = 0;
          let storedAtHook = -1;
          const acceptance = await sender.send(
            { from: 'sender@mailroom.test', to: `hook-${kind}@example.test` },
            testMessage(),
            {
              beforeFinalDot: () => {
                calls += 1;
                storedAtHook = sink.messages.length;
                return Promise.resolve();
              },
            },
          );
          assert.equal(acceptance.responseCode, 250);
          assert.equal(calls, 1);
          assert.equal(storedAtHook, 0, 'the relay cannot have the message before its final dot');
          assert.equal(sink.messages.length, 1);
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );

    void it(
      'a rejecting hook abandons the message without its final dot: nothing delivered, next one is',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const sink = await startSink();
        const sender = buildSender(kind, relayConfig(sink.port, { maxConnections: 1 }));
        try {
          let bodyWritten = false;
          await assert.rejects(
            sender.send({ from: 'sender@mailroom.test', to: `hook-no-${kind}@example.test` }, testMessage(), {
              beforeFinalDot: () => Promise.reject(new Error('another attempt owns this message now')),
              onBodyWritten: () => (bodyWritten = true),
            }),
            (err: unknown) => {
              assert.ok(err instanceof SmtpSendError);
              assert.equal(err.observation.responseCode, undefined);
              assert.match(err.observation.message ?? '', /another attempt owns this message/);
              return true;
            },
          );
          assert.equal(bodyWritten, false);
          assert.equal((await attempt(sender, `hook-next-${kind}@example.test`)).outcome, 'delivered');
          assert.deepEqual(
            sink.messages.map((m) => m.rcptTo[0]),
            [`hook-next-${kind}@example.test`],
          );
        } finally {
          sender.close();
          await sink.close();
        }
      },
    );
  });
}
