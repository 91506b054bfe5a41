import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startSink } from '@mailroom/sink';
import {
  clientFor,
  rawMessage,
  sendExpectingError,
  sendRaw,
  simpleMessage,
  SmtpDialog,
  waitUntil,
} from './sink-test-kit.js';

const ENVELOPE = { from: 'sender@mailroom.test', to: 'ok-rcpt@mailroom.test' };

void describe('greetingDelayMs', () => {
  void it("holds the greeting long enough for nodemailer's greetingTimeout to fire", async () => {
    const sink = await startSink({ greetingDelayMs: 2000 });
    const client = clientFor(sink, { greetingTimeout: 300 });
    try {
      const started = Date.now();
      const err = await sendExpectingError(client, ENVELOPE);
      assert.equal(err.code, 'ETIMEDOUT');
      assert.match(err.message, /Greeting never received/);
      assert.ok(Date.now() - started < 2000, 'the client gave up before the greeting came');
      assert.equal(sink.messages.length, 0);
      await waitUntil(() => sink.stats.openConnections === 0, 'the client to hang up');
    } finally {
      client.close();
      await sink.close();
    }
  });

  void it('a client that waits long enough gets the greeting (with the banner) and delivers', async () => {
    const sink = await startSink({ greetingDelayMs: 250, banner: 'slow hello' });
    const client = clientFor(sink);
    try {
      const started = Date.now();
      const { dialog, greeting } = await SmtpDialog.open(sink);
      dialog.destroy();
      assert.ok(Date.now() - started >= 250);
      assert.equal(greeting, '220 mailroom-sink ESMTP slow hello');
      await sendRaw(client, ENVELOPE, simpleMessage().raw);
      assert.equal(sink.messages.length, 1);
    } finally {
      client.close();
      await sink.close();
    }
  });
});

void describe('maxMessageBytes', () => {
  void it('is advertised as SIZE, and a larger message gets 552 5.3.4 after DATA while a smaller one is stored', async () => {
    const sink = await startSink({ maxMessageBytes: 2048, keepRaw: true });
    const client = clientFor(sink);
    try {
      const { dialog } = await SmtpDialog.open(sink);
      try {
        assert.match(await dialog.command('EHLO client.test'), /^250 SIZE 2048$/m);
      } finally {
        dialog.destroy();
      }

      const big = rawMessage([['Subject', 'too big']], `${'x'.repeat(76)}\r\n`.repeat(40));
      assert.ok(big.length > 2048);
      const err = await sendExpectingError(client, ENVELOPE, big);
      assert.equal(err.responseCode, 552);
      assert.equal(err.response, '552 5.3.4 Message too big');
      assert.equal(err.command, 'DATA');
      assert.equal(sink.messages.length, 0);

      const small = rawMessage([['Subject', 'fits']], `${'x'.repeat(76)}\r\n`.repeat(10));
      assert.ok(small.length < 2048);
      await sendRaw(client, ENVELOPE, small);
      assert.equal(sink.messages.length, 1);
      assert.deepEqual(sink.messages[0]?.raw, small);
    } finally {
      client.close();
      await sink.close();
    }
  });
});
