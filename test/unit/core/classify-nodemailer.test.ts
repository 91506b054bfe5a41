import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { classifySmtpOutcome, type Classification, type SmtpObservation } from '@mailroom/core';
import { createSelfSignedCertificate } from '../../harness/certs.js';
import { freePort } from '../../harness/ports.js';

/**
 * The classification table checked against what the real nodemailer reports when real SMTP servers on
 * 127.0.0.1 misbehave, so the table follows the library's actual codes, commands and messages.
 */

/** Short enough to keep the suite fast, long enough for a loaded machine. */
const TIMEOUT_MS = 5000;

interface NodemailerFailure extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

/** The observation as the worker builds it: nodemailer's error fields, or the reply on success. */
function observationOf(outcome: { info?: { response: string }; err?: NodemailerFailure }): SmtpObservation {
  if (outcome.info !== undefined) {
    return { response: outcome.info.response, responseCode: Number(outcome.info.response.slice(0, 3)) };
  }
  const e: NodemailerFailure = outcome.err ?? new Error('no outcome');
  return {
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.responseCode === 'number' ? { responseCode: e.responseCode } : {}),
    ...(typeof e.response === 'string' ? { response: e.response } : {}),
    ...(typeof e.command === 'string' ? { command: e.command } : {}),
    message: e.message,
  };
}

type TransportOptions = Parameters<typeof nodemailer.createTransport>[0] & Record<string, unknown>;

/** Sends one small message to 127.0.0.1:port and returns what nodemailer reported. */
async function attempt(
  port: number,
  options: Record<string, unknown> = {},
  text = 'hello',
): Promise<SmtpObservation> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
    ...options,
  } as TransportOptions);
  try {
    const info = (await transport.sendMail({
      from: 'sender@example.com',
      to: 'rcpt@example.org',
      subject: 'classification',
      text,
    })) as { response: string };
    return observationOf({ info });
  } catch (err) {
    return observationOf({ err: err as NodemailerFailure });
  } finally {
    transport.close();
  }
}

/** Runs `body` against an smtp-server on an ephemeral loopback port, then stops the server. */
async function withServer<T>(options: SMTPServerOptions, body: (port: number) => Promise<T>): Promise<T> {
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    hideSTARTTLS: true,
    closeTimeout: 1000,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined);
      stream.on('end', () => callback(null));
    },
    ...options,
  });
  // A client that gives up mid-handshake makes the server emit an error; that is the scenario, not a failure.
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  try {
    return await body(address.port);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A raw TCP server speaking just enough SMTP for faults smtp-server cannot produce. */
async function withRawServer<T>(
  onSocket: (socket: Socket) => void,
  body: (port: number) => Promise<T>,
): Promise<T> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  try {
    return await body(address.port);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function smtpError(responseCode: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode });
}

function expectClass(observation: SmtpObservation, expected: Partial<Classification>): void {
  const actual = classifySmtpOutcome(observation);
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(actual[key as keyof Classification], value, `${key} for ${JSON.stringify(observation)}`);
  }
}

void describe('classifySmtpOutcome on real nodemailer failures', () => {
  void it('a message the relay accepts is delivered', async () => {
    const observation = await withServer({}, (port) => attempt(port));
    expectClass(observation, { outcome: 'delivered', reason: 'delivered', replyClass: '2xx' });
  });

  void it('550 5.1.1 at RCPT is permanent mailbox_unknown', async () => {
    const observation = await withServer(
      { onRcptTo: (_a, _s, callback) => callback(smtpError(550, '5.1.1 <rcpt@example.org>: user unknown')) },
      (port) => attempt(port),
    );
    assert.equal(observation.command, 'RCPT TO');
    expectClass(observation, { outcome: 'permanent', reason: 'mailbox_unknown', enhancedStatus: '5.1.1' });
  });

  void it('451 4.7.1 rate limited at RCPT is throttled', async () => {
    const observation = await withServer(
      {
        onRcptTo: (_a, _s, callback) =>
          callback(smtpError(451, '4.7.1 Rate limit exceeded, try again later')),
      },
      (port) => attempt(port),
    );
    expectClass(observation, { outcome: 'throttled', reason: 'throttled', replyClass: '4xx' });
  });

  void it('554 5.7.1 relay access denied at RCPT is config relay_denied', async () => {
    const observation = await withServer(
      {
        onRcptTo: (_a, _s, callback) =>
          callback(smtpError(554, '5.7.1 <rcpt@example.org>: Relay access denied')),
      },
      (port) => attempt(port),
    );
    expectClass(observation, { outcome: 'config', reason: 'relay_denied' });
  });

  void it('a 554 greeting is config greeting_rejected', async () => {
    const observation = await withServer(
      { onConnect: (_s, callback) => callback(new Error('Client host blocked')) },
      (port) => attempt(port),
    );
    assert.equal(observation.responseCode, 554);
    expectClass(observation, { outcome: 'config', reason: 'greeting_rejected', replyClass: '5xx' });
  });

  void it('a 421 greeting is transient', async () => {
    const observation = await withServer(
      { onConnect: (_s, callback) => callback(smtpError(421, 'Service not available, closing channel')) },
      (port) => attempt(port),
    );
    assert.equal(observation.responseCode, 421);
    expectClass(observation, { outcome: 'transient', reason: 'service_unavailable' });
  });

  void it('bad credentials are config auth_failed', async () => {
    const observation = await withServer(
      {
        authOptional: false,
        allowInsecureAuth: true,
        authMethods: ['PLAIN'],
        onAuth: (_auth, _s, callback) => callback(new Error('Invalid username or password')),
      },
      (port) => attempt(port, { auth: { user: 'mailroom', pass: 'wrong' } }),
    );
    assert.equal(observation.code, 'EAUTH');
    expectClass(observation, { outcome: 'config', reason: 'auth_failed', replyClass: 'auth' });
  });

  void it('a message over the relay SIZE limit is permanent message_too_large', async () => {
    // smtp-server only flags an oversized stream; refusing it is the application's job, as in a real relay.
    const observation = await withServer(
      {
        size: 1024,
        onData(stream, _session, callback) {
          stream.on('data', () => undefined);
          stream.on('end', () =>
            callback(stream.sizeExceeded ? smtpError(552, '5.3.4 Message size exceeds fixed limit') : null),
          );
        },
      },
      (port) => attempt(port, {}, 'x'.repeat(4096)),
    );
    assert.equal(observation.command, 'DATA');
    expectClass(observation, { outcome: 'permanent', reason: 'message_too_large', enhancedStatus: '5.3.4' });
  });

  void it('STARTTLS required but refused by the relay is config tls_failed', async () => {
    const observation = await withServer({ disabledCommands: ['STARTTLS'] }, (port) =>
      attempt(port, { ignoreTLS: false, requireTLS: true }),
    );
    assert.equal(observation.code, 'ETLS');
    assert.equal(observation.command, 'STARTTLS');
    expectClass(observation, { outcome: 'config', reason: 'tls_failed', replyClass: 'tls' });
  });

  void it('STARTTLS to an untrusted certificate is config tls_failed (ESOCKET, cause only in the text)', async () => {
    // requireTLS sends STARTTLS even when it is not advertised; smtp-server then presents its built-in
    // certificate (expired), and nodemailer reports the failed handshake as ESOCKET.
    const observation = await withServer({}, (port) => attempt(port, { ignoreTLS: false, requireTLS: true }));
    assert.equal(observation.code, 'ESOCKET');
    expectClass(observation, { outcome: 'config', reason: 'tls_failed', replyClass: 'tls' });
  });

  void it('a self-signed certificate on implicit TLS is config tls_failed', async () => {
    const { key, cert } = await createSelfSignedCertificate('relay.mailroom.test');
    const observation = await withServer({ secure: true, key, cert }, (port) =>
      attempt(port, { secure: true, tls: { servername: 'relay.mailroom.test' } }),
    );
    expectClass(observation, { outcome: 'config', reason: 'tls_failed', replyClass: 'tls' });
  });

  void it('a refused connection is transient connection_refused', async () => {
    const port = await freePort();
    const observation = await attempt(port);
    expectClass(observation, { outcome: 'transient', reason: 'connection_refused', replyClass: 'net' });
  });

  void it('a server that never greets is transient greeting_timeout', async () => {
    const observation = await withRawServer(
      () => undefined,
      (port) => attempt(port, { greetingTimeout: 300 }),
    );
    assert.equal(observation.code, 'ETIMEDOUT');
    expectClass(observation, { outcome: 'transient', reason: 'greeting_timeout', replyClass: 'timeout' });
  });

  void it('a connection closed at MAIL FROM, before any body, is transient connection_lost', async () => {
    const observation = await withRawServer(
      (socket) => {
        socket.write('220 raw.mailroom.test ESMTP\r\n');
        socket.on('data', (chunk: Buffer) => {
          const line = chunk.toString('latin1');
          if (/^EHLO/i.test(line)) socket.write('250 raw.mailroom.test\r\n');
          else socket.destroy();
        });
      },
      (port) => attempt(port),
    );
    expectClass(observation, { outcome: 'transient', reason: 'connection_lost', replyClass: 'net' });
  });
});
