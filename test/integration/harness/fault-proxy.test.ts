import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { SmtpDialogue, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy.js';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { waitFor } from '../../harness/wait-for.js';

interface StoredMessage {
  readonly from: string;
  readonly to: string[];
  readonly raw: string;
}

/** A tiny relay: stores every message it accepts; counts the messages cut off by a lost connection. */
interface TinyRelay {
  readonly port: number;
  readonly stored: StoredMessage[];
  readonly abortedMessages: () => number;
  close(): Promise<void>;
}

async function startTinyRelay(): Promise<TinyRelay> {
  const stored: StoredMessage[] = [];
  let aborted = 0;
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    hideSTARTTLS: true,
    closeTimeout: 1000,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (err) => {
        aborted += 1;
        callback(err);
      });
      stream.on('end', () => {
        const envelope = session.envelope;
        stored.push({
          from: envelope.mailFrom === false ? '' : envelope.mailFrom.address,
          to: envelope.rcptTo.map((rcpt) => rcpt.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback(null);
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    stored,
    abortedMessages: () => aborted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface SendError extends Error {
  code?: string;
  originalCode?: string;
  response?: string;
}

function transportTo(proxy: FaultProxy, options: { pool?: boolean; greetingTimeout?: number } = {}) {
  return nodemailer.createTransport({
    host: proxy.host,
    port: proxy.port,
    secure: false,
    ignoreTLS: true,
    connectionTimeout: 5000,
    greetingTimeout: options.greetingTimeout ?? 5000,
    socketTimeout: 5000,
    logger: false,
    ...(options.pool ? { pool: true, maxConnections: 1 } : {}),
  });
}

function message(id: string, text = 'Hello from the fault proxy tests.') {
  return {
    from: 'sender@mailroom.test',
    to: 'rcpt@example.test',
    subject: `test ${id}`,
    messageId: `<${id}@mailroom.test>`,
    text,
  };
}

/** Reads a socket until `pattern` appears in what it has sent so far. */
function readUntil(socket: Socket, pattern: RegExp, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (pattern.test(text)) finish(() => resolve(text));
    };
    const onClose = (): void =>
      finish(() => reject(new Error(`closed before ${String(pattern)}; got ${JSON.stringify(text)}`)));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`no ${String(pattern)} within ${timeoutMs}ms`))),
      timeoutMs,
    );
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      settle();
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

void describe('fault proxy in front of a real SMTP server', { timeout: 60_000 }, () => {
  let baseline: string[];
  let relay: TinyRelay;
  let proxy: FaultProxy;

  before(async () => {
    baseline = snapshotResources();
    relay = await startTinyRelay();
  });

  afterEach(async () => {
    await proxy.close();
  });

  after(async () => {
    await relay.close();
    await assertNoResourceLeaks(baseline);
  });

  void it('pass: delivers the message unchanged', async () => {
    proxy = await startFaultProxy({ targetPort: relay.port });
    const transport = transportTo(proxy);
    const storedBefore = relay.stored.length;
    const info = await transport.sendMail(message('pass'));
    transport.close();
    assert.match(info.response, /^250 /);
    const stored = relay.stored.slice(storedBefore);
    assert.equal(stored.length, 1);
    assert.equal(stored[0]?.from, 'sender@mailroom.test');
    assert.deepEqual(stored[0]?.to, ['rcpt@example.test']);
    assert.match(stored[0]?.raw ?? '', /Message-ID: <pass@mailroom\.test>/i);
    assert.deepEqual(proxy.stats, { connections: 1, swallowedReplies: 0, resets: 0 });
  });

  void it('latency: every exchange pays the delay each way', async () => {
    const ms = 60;
    proxy = await startFaultProxy({ targetPort: relay.port, mode: { kind: 'latency', ms } });
    const transport = transportTo(proxy);
    const started = performance.now();
    await transport.sendMail(message('latency'));
    const elapsed = performance.now() - started;
    transport.close();
    // Greeting (one way), then at least EHLO, the pipelined envelope with DATA, and the content: three round trips.
    assert.ok(elapsed >= 7 * ms, `the send took ${elapsed.toFixed(0)}ms with ${ms}ms each way`);
    assert.ok(relay.stored.some((m) => m.raw.includes('<latency@mailroom.test>')));
  });

  void it('resetAfterClientBytes: a reset inside the content fails the send and nothing is stored', async () => {
    const abortedBefore = relay.abortedMessages();
    const storedBefore = relay.stored.length;
    proxy = await startFaultProxy({
      targetPort: relay.port,
      mode: { kind: 'resetAfterClientBytes', bytes: 2000 },
    });
    const transport = transportTo(proxy);
    await assert.rejects(transport.sendMail(message('reset', 'x'.repeat(20_000))), (err: SendError) => {
      assert.ok(['ESOCKET', 'ECONNECTION'].includes(err.code ?? ''), `code ${err.code}: ${err.message}`);
      return true;
    });
    transport.close();
    // Other tests' sessions may end meanwhile: wait for this one's partial message to be given up.
    await waitFor(() => relay.abortedMessages() === abortedBefore + 1, {
      what: 'the relay to drop the partial message',
    });
    assert.equal(relay.stored.length, storedBefore);
    assert.equal(proxy.stats.resets, 1);
  });

  void it('blackhole: the client hits its greeting timeout', async () => {
    proxy = await startFaultProxy({ targetPort: relay.port, mode: { kind: 'blackhole' } });
    const transport = transportTo(proxy, { greetingTimeout: 300 });
    const started = performance.now();
    await assert.rejects(transport.sendMail(message('blackhole')), (err: SendError) => {
      assert.equal(err.code, 'ETIMEDOUT');
      assert.match(err.message, /Greeting never received/);
      return true;
    });
    const elapsed = performance.now() - started;
    transport.close();
    assert.ok(elapsed >= 290 && elapsed < 3000, `gave up after ${elapsed.toFixed(0)}ms`);
    assert.equal(proxy.stats.connections, 1);
  });

  void it('closeBeforeGreeting: the client sees the connection close unexpectedly', async () => {
    proxy = await startFaultProxy({ targetPort: relay.port, mode: { kind: 'closeBeforeGreeting' } });
    const transport = transportTo(proxy);
    await assert.rejects(transport.sendMail(message('close')), (err: SendError) => {
      assert.equal(err.code, 'ECONNECTION');
      assert.match(err.message, /Connection closed unexpectedly/);
      return true;
    });
    transport.close();
  });

  void it('swallowReplyAfterDot: the relay stores the message but the client only sees the connection end', async () => {
    const storedBefore = relay.stored.length;
    proxy = await startFaultProxy({ targetPort: relay.port, mode: { kind: 'swallowReplyAfterDot' } });
    const transport = transportTo(proxy);
    await assert.rejects(transport.sendMail(message('swallowed')), (err: SendError) => {
      assert.equal(err.code, 'ECONNECTION');
      assert.equal(err.response, undefined, 'no SMTP reply reached the client');
      return true;
    });
    transport.close();
    await waitFor(() => relay.stored.length > storedBefore, { what: 'the relay to store the message' });
    assert.equal(relay.stored.length, storedBefore + 1);
    assert.match(relay.stored.at(-1)?.raw ?? '', /<swallowed@mailroom\.test>/);
    assert.equal(proxy.stats.swallowedReplies, 1);
  });

  void it('swallowReplyAfterDot also applies to a pooled connection opened before the switch', async () => {
    const storedBefore = relay.stored.length;
    proxy = await startFaultProxy({ targetPort: relay.port });
    const transport = transportTo(proxy, { pool: true });
    await transport.sendMail(message('pooled-1'));
    proxy.setMode({ kind: 'swallowReplyAfterDot' });
    await assert.rejects(transport.sendMail(message('pooled-2')), { code: 'ECONNECTION' });
    transport.close();
    await waitFor(() => relay.stored.length === storedBefore + 2, { what: 'both messages at the relay' });
    assert.deepEqual(proxy.stats, { connections: 1, swallowedReplies: 1, resets: 0 });
  });

  void it('swallowReplyAfterDot follows a pipelined dialogue with the end of DATA split across chunks', async () => {
    const storedBefore = relay.stored.length;
    proxy = await startFaultProxy({ targetPort: relay.port, mode: { kind: 'swallowReplyAfterDot' } });
    const socket = connect({ host: proxy.host, port: proxy.port });
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    try {
      await readUntil(socket, /^220 .*\r\n/m);
      socket.write('EHLO client.test\r\n');
      await readUntil(socket, /^250 .*\r\n/m);
      // RFC 2920: the envelope and DATA in one write, answered in order.
      socket.write(
        'MAIL FROM:<a@mailroom.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n',
      );
      const replies = await readUntil(socket, /^354 /m);
      assert.match(replies, /^250 [^\r]*\r\n250 [^\r]*\r\n250 [^\r]*\r\n354 /m);
      let closed = false;
      socket.once('close', () => (closed = true));
      let afterDot = '';
      socket.on('data', (chunk: Buffer) => (afterDot += chunk.toString('latin1')));
      // A line holding only a stuffed dot is content, not the end; the end comes in three writes.
      socket.write(
        'Subject: split\r\nMessage-ID: <split@mailroom.test>\r\n\r\nline one\r\n..\r\nlast line\r',
      );
      socket.write('\n.');
      socket.write('\r\n');
      await waitFor(() => closed, { what: 'the proxy to close the client connection' });
      assert.equal(afterDot, '', 'the reply to the dot never reached the client');
    } finally {
      socket.destroy();
    }
    await waitFor(() => relay.stored.length === storedBefore + 1, { what: 'the relay to store the message' });
    const stored = relay.stored.at(-1);
    assert.deepEqual(stored?.to, ['b@example.test', 'c@example.test']);
    assert.match(stored?.raw ?? '', /line one\r\n\.\r\nlast line/);
    assert.equal(proxy.stats.swallowedReplies, 1);
  });

  void it('refuse: every new connection is reset before the greeting', async () => {
    proxy = await startFaultProxy({ targetPort: relay.port, mode: { kind: 'refuse' } });
    const transport = transportTo(proxy);
    await assert.rejects(transport.sendMail(message('refused')), (err: SendError) => {
      // nodemailer files a reset socket under ESOCKET and keeps the system code, as for a refused port.
      assert.equal(err.code, 'ESOCKET', err.message);
      assert.equal(err.originalCode, 'ECONNRESET', err.message);
      return true;
    });
    transport.close();
    proxy.setMode({ kind: 'pass' });
    const again = transportTo(proxy);
    await again.sendMail(message('after-refuse'));
    again.close();
    assert.equal(proxy.stats.connections, 2);
  });
});

void describe("SmtpDialogue (the fault proxy's view of a session)", { timeout: 60_000 }, () => {
  /** Feeds `text` one byte at a time: every boundary a chunk could have is exercised. */
  function client(dialogue: SmtpDialogue, text: string): void {
    for (const byte of Buffer.from(text, 'latin1')) dialogue.onClientBytes(Buffer.from([byte]));
  }
  /** Feeds server bytes one at a time; returns what would reach the client and whether the rest was swallowed. */
  function server(
    dialogue: SmtpDialogue,
    text: string,
    swallow = true,
  ): { forwarded: string; swallowed: boolean } {
    let forwarded = '';
    for (const byte of Buffer.from(text, 'latin1')) {
      const result = dialogue.onServerBytes(Buffer.from([byte]), swallow);
      forwarded += result.forward.toString('latin1');
      if (result.swallowed) return { forwarded, swallowed: true };
    }
    return { forwarded, swallowed: false };
  }

  function openSession(): SmtpDialogue {
    const dialogue = new SmtpDialogue();
    assert.equal(server(dialogue, '220 relay.test ESMTP\r\n').swallowed, false);
    client(dialogue, 'EHLO client.test\r\n');
    assert.equal(server(dialogue, '250-relay.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n').swallowed, false);
    return dialogue;
  }

  void it('finds the reply to the end of DATA behind pipelined replies, byte by byte', () => {
    const dialogue = openSession();
    client(dialogue, 'MAIL FROM:<a@mailroom.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    const envelope = '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n';
    assert.deepEqual(server(dialogue, envelope), { forwarded: envelope, swallowed: false });
    client(dialogue, 'Subject: x\r\n\r\n..\r\n..x\r\nend\r\n.\r\n');
    assert.deepEqual(server(dialogue, '250 2.0.0 Ok: queued\r\n'), { forwarded: '', swallowed: true });
  });

  void it('treats `.<CRLF>` right after 354 as an empty message, and forwards when not swallowing', () => {
    const dialogue = openSession();
    client(dialogue, 'MAIL FROM:<>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    server(dialogue, '250 Ok\r\n250 Ok\r\n354 Go\r\n');
    client(dialogue, '.\r\nQUIT\r\n');
    assert.deepEqual(server(dialogue, '250 Ok: queued\r\n221 Bye\r\n', false), {
      forwarded: '250 Ok: queued\r\n221 Bye\r\n',
      swallowed: false,
    });
  });

  void it('is not fooled by a DATA command the server refused', () => {
    const dialogue = openSession();
    client(dialogue, 'MAIL FROM:<a@mailroom.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n');
    server(dialogue, '250 Ok\r\n550 5.1.1 No such user\r\n554 5.5.1 No valid recipients\r\n');
    // Back in command mode: `\r\n.\r\n` here is not the end of any content, and RSET's reply is not swallowed.
    client(dialogue, 'RSET\r\n');
    assert.deepEqual(server(dialogue, '250 Flushed\r\n'), { forwarded: '250 Flushed\r\n', swallowed: false });
  });

  void it('stops following a session once STARTTLS is accepted', () => {
    const dialogue = openSession();
    client(dialogue, 'STARTTLS\r\n');
    server(dialogue, '220 Ready to start TLS\r\n');
    assert.equal(dialogue.opaque, true);
    client(dialogue, '\x16\x03\x01 binary handshake \r\n.\r\n');
    assert.deepEqual(server(dialogue, '\x16\x03\x03 encrypted'), {
      forwarded: '\x16\x03\x03 encrypted',
      swallowed: false,
    });
  });
});
