import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { startSink, type Sink } from '@mailroom/sink';
import {
  clientFor,
  pooledClientFor,
  DialogClosedError,
  sendExpectingError,
  sendRaw,
  simpleMessage,
  SmtpDialog,
  waitUntil,
  type SinkClient,
} from './sink-test-kit.js';

const FROM = 'sender@mailroom.test';

void describe('scripted recipients', () => {
  let sink: Sink;
  let client: SinkClient;

  before(async () => {
    sink = await startSink();
  });
  after(async () => {
    await sink.close();
  });
  beforeEach(() => {
    sink.reset();
    client = clientFor(sink);
  });
  afterEach(() => {
    client.close();
  });

  /** Sends to `to` `failures` times expecting the same refusal each time, then once more expecting success. */
  async function failThenAccept(
    to: string,
    failures: number,
    expected: { responseCode: number; response: string; command?: string; code?: string },
  ): Promise<void> {
    for (let i = 1; i <= failures; i++) {
      const err = await sendExpectingError(client, { from: FROM, to });
      assert.equal(err.responseCode, expected.responseCode, `attempt ${i}`);
      assert.equal(err.response, expected.response, `attempt ${i}`);
      if (expected.command) assert.equal(err.command, expected.command, `attempt ${i}`);
      if (expected.code) assert.equal(err.code, expected.code, `attempt ${i}`);
      assert.equal(sink.messages.length, 0, `nothing stored after attempt ${i}`);
    }
    const { raw, messageId } = simpleMessage();
    const info = await sendRaw(client, { from: FROM, to }, raw);
    assert.match(info.response, /^250 /);
    await sink.waitForMessages(1);
    assert.equal(sink.messages.length, 1);
    assert.equal(sink.messages[0]?.messageId, messageId);
  }

  void it('temp421-N: 421 4.4.2 at RCPT for N attempts, then accepted', async () => {
    const rejectedBefore = sink.stats.rejectedRcpts;
    await failThenAccept('temp421-2-alice@mailroom.test', 2, {
      responseCode: 421,
      response: '421 4.4.2 Service temporarily unavailable',
    });
    assert.equal(sink.attempts('temp421-2-alice@mailroom.test'), 3);
    assert.equal(sink.stats.rejectedRcpts - rejectedBefore, 2);
  });

  void it('temp421-N: the server closes the connection after the 421', async () => {
    const { dialog } = await SmtpDialog.open(sink);
    try {
      assert.match(await dialog.command('EHLO client.test'), /^250[ -]/);
      assert.match(await dialog.command(`MAIL FROM:<${FROM}>`), /^250 /);
      assert.equal(
        await dialog.command('RCPT TO:<temp421-1-bob@mailroom.test>'),
        '421 4.4.2 Service temporarily unavailable',
      );
      // We never close our side: the connection ends because the server closed it.
      await dialog.closed;
    } finally {
      dialog.destroy();
    }
  });

  void it('temp451-N: 451 4.3.0 at RCPT for N attempts, then accepted', async () => {
    await failThenAccept('temp451-2-alice@mailroom.test', 2, {
      responseCode: 451,
      response: '451 4.3.0 Temporary local problem',
      command: 'RCPT TO',
      code: 'EENVELOPE',
    });
    assert.equal(sink.attempts('temp451-2-alice@mailroom.test'), 3);
  });

  void it('throttle-N: 450 4.7.28 at RCPT for N attempts, then accepted', async () => {
    await failThenAccept('throttle-1-alice@mailroom.test', 1, {
      responseCode: 450,
      response: '450 4.7.28 Rate limited, try again later',
      command: 'RCPT TO',
    });
    assert.equal(sink.attempts('throttle-1-alice@mailroom.test'), 2);
  });

  void it('counts attempts per exact address: another address with the same script starts from zero', async () => {
    await sendExpectingError(client, { from: FROM, to: 'temp451-1-a@mailroom.test' });
    await sendExpectingError(client, { from: FROM, to: 'temp451-1-b@mailroom.test' });
    await sendRaw(client, { from: FROM, to: 'temp451-1-a@mailroom.test' }, simpleMessage().raw);
    assert.equal(sink.attempts('temp451-1-a@mailroom.test'), 2);
    assert.equal(sink.attempts('temp451-1-b@mailroom.test'), 1);
  });

  for (const [script, responseCode, response] of [
    ['bounce', 550, '550 5.1.1 User unknown'],
    ['full', 452, '452 4.2.2 Mailbox full'],
  ] as const) {
    void it(`${script}: ${response} at RCPT on every attempt`, async () => {
      const to = `${script}-carol@mailroom.test`;
      for (let i = 1; i <= 3; i++) {
        const err = await sendExpectingError(client, { from: FROM, to });
        assert.equal(err.responseCode, responseCode);
        assert.equal(err.response, response);
        assert.equal(err.command, 'RCPT TO');
      }
      assert.equal(sink.attempts(to), 3);
      assert.equal(sink.messages.length, 0);
    });
  }

  void it('a rejected recipient next to an accepted one: the message goes to the accepted one only', async () => {
    const { raw } = simpleMessage();
    const info = await sendRaw(
      client,
      { from: FROM, to: ['bounce-x@mailroom.test', 'ok-y@mailroom.test'] },
      raw,
    );
    assert.deepEqual(info.accepted, ['ok-y@mailroom.test']);
    assert.deepEqual(info.rejected, ['bounce-x@mailroom.test']);
    await sink.waitForMessages(1);
    assert.deepEqual(sink.messages[0]?.rcptTo, ['ok-y@mailroom.test']);
  });

  void it('toobig: 552 5.3.4 after DATA on every attempt, nothing stored', async () => {
    const to = 'toobig-dave@mailroom.test';
    for (let i = 1; i <= 2; i++) {
      const err = await sendExpectingError(client, { from: FROM, to });
      assert.equal(err.responseCode, 552);
      assert.equal(err.response, '552 5.3.4 Message too big');
      assert.equal(err.command, 'DATA');
      assert.equal(err.code, 'EMESSAGE');
    }
    assert.equal(sink.attempts(to), 2, 'RCPT itself was accepted each time');
    assert.equal(sink.messages.length, 0);
  });

  void it('toobig decides DATA for the whole message when it is one of several recipients', async () => {
    const err = await sendExpectingError(client, {
      from: FROM,
      to: ['ok-1@mailroom.test', 'toobig-2@mailroom.test'],
    });
    assert.equal(err.responseCode, 552);
    assert.equal(sink.messages.length, 0);
  });

  void it('datafail451-N: 451 4.3.0 after DATA for N attempts, then accepted', async () => {
    await failThenAccept('datafail451-2-erin@mailroom.test', 2, {
      responseCode: 451,
      response: '451 4.3.0 Temporary local problem',
      command: 'DATA',
      code: 'EMESSAGE',
    });
    assert.equal(sink.attempts('datafail451-2-erin@mailroom.test'), 3);
  });

  void it('slow-MS: accepted, with the reply to the final dot held back MS milliseconds', async () => {
    const started = Date.now();
    const info = await sendRaw(
      client,
      { from: FROM, to: 'slow-300-frank@mailroom.test' },
      simpleMessage().raw,
    );
    const elapsed = Date.now() - started;
    assert.match(info.response, /^250 /);
    assert.ok(elapsed >= 300, `reply came after ${elapsed} ms`);
    assert.equal(sink.messages.length, 1);
    const record = sink.messages[0]!;
    assert.equal(record.replied, true);
    assert.ok(record.receivedAt - started >= 300, 'receivedAt is when the reply was sent');
  });

  void it('slow-MS whose client gives up first: stored, marked as never answered', async () => {
    const impatient = clientFor(sink, { socketTimeout: 200 });
    try {
      const err = await sendExpectingError(impatient, { from: FROM, to: 'slow-800-gina@mailroom.test' });
      assert.equal(err.code, 'ETIMEDOUT');
    } finally {
      impatient.close();
    }
    await sink.waitForMessages(1, 3000);
    assert.equal(sink.messages[0]?.replied, false);
  });

  void it('stalldata: the message is read and never answered; the client times out and nothing is stored', async () => {
    const impatient = clientFor(sink, { socketTimeout: 300 });
    const started = Date.now();
    try {
      const err = await sendExpectingError(impatient, { from: FROM, to: 'stalldata-hank@mailroom.test' });
      assert.equal(err.code, 'ETIMEDOUT');
      assert.ok(Date.now() - started >= 300);
    } finally {
      impatient.close();
    }
    await waitUntil(() => sink.stats.openConnections === 0, 'the stalled connection to close');
    assert.equal(sink.messages.length, 0);
    assert.equal(sink.attempts('stalldata-hank@mailroom.test'), 1);
    assert.equal(sink.unanswered('stalldata-hank@mailroom.test'), 1, 'the whole body was read, unanswered');
    assert.equal(sink.unanswered('ok-hank@mailroom.test'), 0);
  });

  void it('drop: the connection is destroyed at RCPT without a reply', async () => {
    const to = 'drop-ivan@mailroom.test';
    const rejectedBefore = sink.stats.rejectedRcpts;
    const err = await sendExpectingError(client, { from: FROM, to });
    assert.equal(err.code, 'ECONNECTION');
    assert.equal(err.responseCode, undefined, 'no reply means no reply code');
    assert.equal(sink.attempts(to), 1);
    assert.equal(sink.stats.rejectedRcpts - rejectedBefore, 1);
    assert.equal(sink.messages.length, 0);

    const { dialog } = await SmtpDialog.open(sink);
    try {
      await dialog.command('EHLO client.test');
      await dialog.command(`MAIL FROM:<${FROM}>`);
      await assert.rejects(dialog.command(`RCPT TO:<${to}>`), DialogClosedError);
    } finally {
      dialog.destroy();
    }
  });

  void it('acceptdrop: the message is stored (replied: false) and the connection dies before the reply', async () => {
    const impatient = clientFor(sink, { socketTimeout: 1000 });
    const { raw, messageId } = simpleMessage();
    try {
      const err = await sendExpectingError(
        impatient,
        { from: FROM, to: 'acceptdrop-judy@mailroom.test' },
        raw,
      );
      assert.equal(err.code, 'ECONNECTION');
      assert.equal(err.responseCode, undefined);
    } finally {
      impatient.close();
    }
    await sink.waitForMessages(1);
    const record = sink.messages[0]!;
    assert.equal(record.replied, false);
    assert.equal(record.messageId, messageId);

    // The same over a hand-driven session: DATA is answered, the final dot never is.
    const { dialog } = await SmtpDialog.open(sink);
    try {
      await dialog.command('EHLO client.test');
      await dialog.command(`MAIL FROM:<${FROM}>`);
      assert.match(await dialog.command('RCPT TO:<acceptdrop-judy@mailroom.test>'), /^250 /);
      assert.match(await dialog.command('DATA'), /^354 /);
      await assert.rejects(dialog.message(raw), DialogClosedError);
    } finally {
      dialog.destroy();
    }
    await sink.waitForMessages(2);
    assert.equal(sink.messages[1]?.replied, false);
  });

  void it('a pooled client gets through after a 421 closed one of its connections', async () => {
    const pooled = pooledClientFor(sink, { maxConnections: 1 });
    try {
      const err = await sendExpectingError(pooled, { from: FROM, to: 'temp421-1-kim@mailroom.test' });
      assert.equal(err.responseCode, 421);
      await sendRaw(pooled, { from: FROM, to: 'temp421-1-kim@mailroom.test' }, simpleMessage().raw);
      assert.equal(sink.messages.length, 1);
      assert.ok(sink.stats.connections >= 2);
    } finally {
      pooled.close();
    }
  });
});
