import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { SinkClosedError, startSink } from '@mailroom/sink';
import { createSelfSignedCertificate } from '../../harness/certs.js';
import { clientFor, sendExpectingError, simpleMessage, SmtpDialog, waitUntil } from './sink-test-kit.js';

const FROM = 'sender@mailroom.test';

/** Kinds of active resources in `now` beyond those in `before`, counted as multisets. */
function extraResources(before: readonly string[], now: readonly string[]): string[] {
  const budget = new Map<string, number>();
  for (const kind of before) budget.set(kind, (budget.get(kind) ?? 0) + 1);
  const extra: string[] = [];
  for (const kind of now) {
    const left = budget.get(kind) ?? 0;
    if (left > 0) budget.set(kind, left - 1);
    else extra.push(kind);
  }
  return extra;
}

async function assertBackToBaseline(before: readonly string[]): Promise<void> {
  let extra: string[] = [];
  try {
    await waitUntil(() => {
      extra = extraResources(before, process.getActiveResourcesInfo());
      return extra.length === 0;
    }, 'active resources to return to the baseline');
  } catch {
    assert.fail(`resources left behind: ${extra.join(', ')}`);
  }
}

/** A raw connection that sends nothing of its own accord. */
async function rawConnection(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

void describe('sink close()', () => {
  void it('ends promptly with stalled connections open, and leaves no handles behind', async () => {
    const before = process.getActiveResourcesInfo();
    const tls = await createSelfSignedCertificate('localhost', ['127.0.0.1']);
    const sink = await startSink({ tls, greetingDelayMs: 0 });
    const client = clientFor(sink, { socketTimeout: 60_000, ignoreTLS: true });

    // 1. a nodemailer send stalled after its final dot
    const stalledSend = sendExpectingError(client, { from: FROM, to: 'stalldata-a@mailroom.test' });
    // 2. a hand-driven session stalled after its final dot
    const { dialog } = await SmtpDialog.open(sink);
    await dialog.command('EHLO client.test');
    await dialog.command(`MAIL FROM:<${FROM}>`);
    await dialog.command('RCPT TO:<stalldata-b@mailroom.test>');
    await dialog.command('DATA');
    const unanswered = dialog.message(simpleMessage().raw);
    // 3. a session stuck in the middle of STARTTLS: the client never starts the handshake
    const { dialog: upgrading } = await SmtpDialog.open(sink);
    await upgrading.command('EHLO client.test');
    assert.match(await upgrading.command('STARTTLS'), /^220 /);
    // 4. a connection that never says anything
    const silent = await rawConnection(sink.port);

    await waitUntil(() => sink.attempts('stalldata-a@mailroom.test') === 1, 'the nodemailer send to stall');
    assert.equal(sink.stats.openConnections, 4);
    // Handlers are attached now: these promises reject during close().
    const waiting = assert.rejects(sink.waitForMessages(1, 60_000), SinkClosedError);
    const unansweredFails = assert.rejects(unanswered);

    const started = Date.now();
    await sink.close();
    const took = Date.now() - started;
    assert.ok(took < 2000, `close() took ${took} ms`);
    assert.equal(sink.stats.openConnections, 0);
    await waiting;
    await sink.close(); // a second close is harmless

    const err = await stalledSend;
    assert.ok(err.code === 'ECONNECTION' || err.code === 'ESOCKET', `nodemailer saw ${err.code}`);
    await unansweredFails;
    await dialog.closed;
    await upgrading.closed;
    if (!silent.destroyed) await once(silent, 'close');
    client.close();
    assert.equal(sink.messages.length, 0);

    await assertBackToBaseline(before);
  });

  void it('ends promptly while a greeting is being held back, and clears the greeting timer', async () => {
    const before = process.getActiveResourcesInfo();
    const sink = await startSink({ greetingDelayMs: 60_000 });
    const socket = await rawConnection(sink.port);
    await waitUntil(() => sink.stats.openConnections === 1, 'the connection to be accepted');

    const started = Date.now();
    await sink.close();
    assert.ok(Date.now() - started < 2000);
    if (!socket.destroyed) await once(socket, 'close');

    // A greeting timer left running would show up here as an extra 'Timeout'.
    await assertBackToBaseline(before);
  });

  void it('ends promptly while a slow reply is pending, without storing that message', async () => {
    const before = process.getActiveResourcesInfo();
    const sink = await startSink();
    const client = clientFor(sink);
    const send = sendExpectingError(client, { from: FROM, to: 'slow-60000-a@mailroom.test' });
    await waitUntil(() => sink.attempts('slow-60000-a@mailroom.test') === 1, 'the slow send to start');

    await sink.close();
    await send;
    client.close();
    assert.equal(sink.messages.length, 0);
    await assertBackToBaseline(before);
  });
});
