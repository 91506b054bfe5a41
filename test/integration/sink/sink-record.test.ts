import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  parseHeaderBlock,
  parseScript,
  parseStoredMessage,
  SinkNoRawError,
  SinkOptionsError,
  SinkWaitTimeoutError,
  startSink,
  type Sink,
} from '@mailroom/sink';
import {
  clientFor,
  newMessageId,
  rawMessage,
  sendRaw,
  sha256,
  simpleMessage,
  type SinkClient,
} from './sink-test-kit.js';

void describe('sink records what it accepts', () => {
  let sink: Sink;
  let client: SinkClient;

  before(async () => {
    sink = await startSink({ keepRaw: true, banner: 'mailroom test sink' });
    client = clientFor(sink);
  });
  after(async () => {
    client.close();
    await sink.close();
  });

  void it('listens on an ephemeral loopback port', () => {
    assert.equal(sink.host, '127.0.0.1');
    assert.ok(sink.port > 0 && sink.port < 65536);
  });

  void it('records envelope, Message-ID, subject, headers in order and the sha256 of the bytes sent', async () => {
    sink.reset();
    const messageId = newMessageId();
    const headers = [
      ['From', '"Sender" <sender@mailroom.test>'],
      ['To', 'ok-alice@mailroom.test, bob@mailroom.test'],
      ['Subject', '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the sink test'],
      ['Message-ID', ` ${messageId} `],
      ['X-Folded', 'first part'],
      ['Date', 'Mon, 23 Nov 2026 10:00:00 +0000'],
    ] as const;
    // X-Folded is written folded onto a second line; the record must give it back unfolded.
    const raw = Buffer.from(
      rawMessage(headers, 'Body line one.\r\n.leading dot stays\r\n')
        .toString('utf8')
        .replace('X-Folded: first part\r\n', 'X-Folded: first part\r\n\tsecond part\r\n'),
    );

    const info = await sendRaw(
      client,
      { from: 'bounces@mailroom.test', to: ['ok-alice@mailroom.test', 'bob@mailroom.test'] },
      raw,
    );
    assert.match(info.response, /^250 Ok: queued as \d+$/);
    assert.deepEqual(info.accepted, ['ok-alice@mailroom.test', 'bob@mailroom.test']);

    await sink.waitForMessages(1);
    assert.equal(sink.messages.length, 1);
    const record = sink.messages[0]!;
    assert.equal(record.mailFrom, 'bounces@mailroom.test');
    assert.deepEqual(record.rcptTo, ['ok-alice@mailroom.test', 'bob@mailroom.test']);
    assert.equal(record.messageId, messageId);
    assert.equal(record.subject, '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the sink test');
    assert.deepEqual(record.headers, [
      ['From', '"Sender" <sender@mailroom.test>'],
      ['To', 'ok-alice@mailroom.test, bob@mailroom.test'],
      ['Subject', '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the sink test'],
      ['Message-ID', `${messageId} `],
      ['X-Folded', 'first part\tsecond part'],
      ['Date', 'Mon, 23 Nov 2026 10:00:00 +0000'],
    ]);
    // The dot-stuffed line arrives unstuffed, so the bytes are exactly those handed to nodemailer.
    assert.equal(record.sizeBytes, raw.length);
    assert.equal(record.sha256, sha256(raw));
    assert.deepEqual(record.raw, raw);
    assert.equal(record.secure, false);
    assert.equal(record.tlsProtocol, undefined);
    assert.equal(record.authUser, undefined);
    assert.equal(record.replied, true);
    assert.ok(Math.abs(record.receivedAt - Date.now()) < 10_000);
    assert.equal(info.response, `250 Ok: queued as ${record.seq}`);
    assert.equal(sink.attempts('ok-alice@mailroom.test'), 1);
    assert.equal(sink.attempts('bob@mailroom.test'), 1);
    assert.equal(sink.attempts('OK-ALICE@mailroom.test'), 0, 'attempts are counted per exact address');

    const parsed = await parseStoredMessage(record);
    assert.equal(parsed.subject, 'Grüße from the sink test');
    assert.equal(parsed.text?.trim(), 'Body line one.\n.leading dot stays');
  });

  void it('numbers messages in order, keeps counting over reset, and forgets records and attempts on reset', async () => {
    sink.reset();
    assert.equal(sink.messages.length, 0);
    assert.equal(sink.attempts('ok-alice@mailroom.test'), 0);
    const first = simpleMessage('one');
    const second = simpleMessage('two');
    await sendRaw(client, { from: 'a@mailroom.test', to: 'x@mailroom.test' }, first.raw);
    await sendRaw(client, { from: 'a@mailroom.test', to: 'x@mailroom.test' }, second.raw);
    await sink.waitForMessages(2);
    const a = sink.messages[0]!;
    const b = sink.messages[1]!;
    assert.equal(a.messageId, first.messageId);
    assert.equal(b.messageId, second.messageId);
    assert.equal(b.seq, a.seq + 1);
    assert.ok(a.seq > 1, 'seq is not restarted by reset');
    assert.equal(sink.attempts('x@mailroom.test'), 2);
  });

  void it('records the null sender as an empty string', async () => {
    sink.reset();
    const { raw } = simpleMessage();
    // nodemailer sends MAIL FROM:<> for an empty envelope sender.
    await sendRaw(client, { from: '', to: 'x@mailroom.test' }, raw);
    await sink.waitForMessages(1);
    assert.equal(sink.messages[0]?.mailFrom, '');
  });

  void it('waitForMessages rejects with a clear error when the count is not reached in time', async () => {
    sink.reset();
    const started = Date.now();
    await assert.rejects(sink.waitForMessages(1, 150), (err: unknown) => {
      assert.ok(err instanceof SinkWaitTimeoutError);
      assert.equal(err.code, 'SINK_WAIT_TIMEOUT');
      assert.match(err.message, /waited 150 ms for 1 message\(s\), only 0 stored/);
      return true;
    });
    assert.ok(Date.now() - started >= 140);
  });

  void it('waitForMessages resolves when a message arrives while it waits', async () => {
    sink.reset();
    const waiting = sink.waitForMessages(1, 5000);
    await sendRaw(client, { from: 'a@mailroom.test', to: 'x@mailroom.test' }, simpleMessage().raw);
    await waiting;
    assert.equal(sink.messages.length, 1);
  });
});

void describe('sink without keepRaw', () => {
  void it('keeps only the summary, and parseStoredMessage says why it cannot parse', async () => {
    const sink = await startSink();
    const client = clientFor(sink);
    try {
      const { raw, messageId } = simpleMessage();
      await sendRaw(client, { from: 'a@mailroom.test', to: 'x@mailroom.test' }, raw);
      await sink.waitForMessages(1);
      const record = sink.messages[0]!;
      assert.equal(record.raw, undefined);
      assert.equal(record.messageId, messageId);
      assert.equal(record.sha256, sha256(raw));
      await assert.rejects(parseStoredMessage(record), SinkNoRawError);
    } finally {
      client.close();
      await sink.close();
    }
  });
});

void describe('sink options', () => {
  void it('refuses secure without tls', async () => {
    await assert.rejects(startSink({ secure: true }), SinkOptionsError);
  });
  void it('refuses a negative greeting delay', async () => {
    await assert.rejects(startSink({ greetingDelayMs: -1 }), SinkOptionsError);
  });
});

void describe('parseScript', () => {
  void it('reads every script, case-insensitively, from a local part or a full address', () => {
    assert.deepEqual(parseScript('ok-alice'), { kind: 'accept' });
    assert.deepEqual(parseScript('alice'), { kind: 'accept' });
    assert.deepEqual(parseScript('TEMP421-3-alice'), { kind: 'temp421', times: 3 });
    assert.deepEqual(parseScript('temp451-2-alice@x.test'), { kind: 'temp451', times: 2 });
    assert.deepEqual(parseScript('throttle-1-a'), { kind: 'throttle', times: 1 });
    assert.deepEqual(parseScript('busy421-2-a'), { kind: 'busy421', times: 2 });
    assert.deepEqual(parseScript('bounce-a'), { kind: 'bounce' });
    assert.deepEqual(parseScript('Full-a'), { kind: 'full' });
    assert.deepEqual(parseScript('toobig-a'), { kind: 'toobig' });
    assert.deepEqual(parseScript('datafail451-4-a'), { kind: 'datafail451', times: 4 });
    assert.deepEqual(parseScript('slow-250-a'), { kind: 'slow', delayMs: 250 });
    assert.deepEqual(parseScript('stalldata-a'), { kind: 'stalldata' });
    assert.deepEqual(parseScript('drop-a'), { kind: 'drop' });
    assert.deepEqual(parseScript('acceptdrop-a'), { kind: 'acceptdrop' });
    assert.deepEqual(parseScript('bounce'), { kind: 'bounce' });
  });

  void it('accepts what is not exactly a script', () => {
    assert.deepEqual(parseScript('temp451-alice'), { kind: 'accept' });
    assert.deepEqual(parseScript('bouncer'), { kind: 'accept' });
    assert.deepEqual(parseScript('x-bounce-a'), { kind: 'accept' });
    assert.deepEqual(parseScript('slow-fast-a'), { kind: 'accept' });
  });
});

void describe('parseHeaderBlock', () => {
  void it('unfolds continuation lines and skips lines that are not fields', () => {
    const block = Buffer.from('A: 1\r\nB:two\r\n  more\r\n\tand more\r\nnot a header\r\nC :3');
    assert.deepEqual(parseHeaderBlock(block), [
      ['A', '1'],
      ['B', 'two  more\tand more'],
      ['C', '3'],
    ]);
  });
});
