import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startSink } from '@mailroom/sink';
import { pooledClientFor, sendRaw, sha256, simpleMessage } from './sink-test-kit.js';

const MESSAGES = 2000;

void describe('sink under a pooled load', () => {
  void it(`records each of ${MESSAGES} pooled, pipelined messages exactly once`, async (t) => {
    const sink = await startSink();
    const client = pooledClientFor(sink, { maxConnections: 5, maxMessages: 500 });
    try {
      const sent = new Map<string, string>();
      const started = performance.now();
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < MESSAGES; i++) {
        const { raw, messageId } = simpleMessage(`load ${i}`);
        sent.set(messageId, sha256(raw));
        sends.push(sendRaw(client, { from: 'load@mailroom.test', to: `ok-${i % 50}@mailroom.test` }, raw));
      }
      await Promise.all(sends);
      await sink.waitForMessages(MESSAGES, 30_000);
      const seconds = (performance.now() - started) / 1000;
      t.diagnostic(`${MESSAGES} messages in ${seconds.toFixed(2)} s (${Math.round(MESSAGES / seconds)}/s)`);

      assert.equal(sink.messages.length, MESSAGES);
      const seen = new Set<string>();
      for (const record of sink.messages) {
        assert.ok(record.messageId !== undefined, `message ${record.seq} has a Message-ID`);
        assert.ok(!seen.has(record.messageId), `${record.messageId} recorded twice`);
        seen.add(record.messageId);
        assert.equal(record.sha256, sent.get(record.messageId), `${record.messageId} arrived intact`);
        assert.equal(record.replied, true);
      }
      assert.equal(seen.size, sent.size);
      assert.deepEqual(
        sink.messages.map((m) => m.seq),
        Array.from({ length: MESSAGES }, (_, i) => i + 1),
      );
      // Pooling really happened: far fewer connections than messages.
      assert.ok(sink.stats.connections <= 10, `${sink.stats.connections} connections`);
    } finally {
      client.close();
      await sink.close();
    }
  });
});
