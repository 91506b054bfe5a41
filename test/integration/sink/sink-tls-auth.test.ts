import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { startSink, type Sink, type SinkOptions } from '@mailroom/sink';
import {
  createSelfSignedCertificate,
  createTestCertificateAuthority,
  type IssuedCertificate,
  type TestCertificateAuthority,
} from '../../harness/certs.js';
import {
  clientFor,
  sendExpectingError,
  sendRaw,
  simpleMessage,
  waitUntil,
  type SinkClient,
} from './sink-test-kit.js';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';

const ENVELOPE = { from: 'sender@mailroom.test', to: 'ok-rcpt@mailroom.test' };

/** Runs `work` against a fresh sink and client, and stops both whatever happens. */
async function withSink(
  options: SinkOptions,
  clientOptions: SMTPTransportOptions,
  work: (sink: Sink, client: SinkClient) => Promise<void>,
): Promise<void> {
  const sink = await startSink(options);
  const client = clientFor(sink, clientOptions);
  try {
    await work(sink, client);
  } finally {
    client.close();
    await sink.close();
  }
}

void describe('sink TLS', () => {
  let ca: TestCertificateAuthority;
  let good: IssuedCertificate;
  let expired: IssuedCertificate;
  let wrongName: IssuedCertificate;
  let selfSigned: IssuedCertificate;

  before(async () => {
    ca = await createTestCertificateAuthority();
    [good, expired, wrongName, selfSigned] = await Promise.all([
      ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] }),
      ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'], expired: true }),
      ca.issue({ commonName: 'other.test' }),
      createSelfSignedCertificate('localhost', ['localhost', '127.0.0.1']),
    ]);
  });

  /** The client every TLS test uses: STARTTLS required, only our CA trusted, verification on. */
  const strictClient = (): SMTPTransportOptions => ({ requireTLS: true, tls: { ca: [ca.cert] } });

  void it('STARTTLS with a CA-issued certificate and verification on: the record is secure', async () => {
    await withSink({ tls: good }, strictClient(), async (sink, client) => {
      const { raw, messageId } = simpleMessage();
      const info = await sendRaw(client, ENVELOPE, raw);
      assert.match(info.response, /^250 /);
      await sink.waitForMessages(1);
      const record = sink.messages[0]!;
      assert.equal(record.messageId, messageId);
      assert.equal(record.secure, true);
      assert.match(record.tlsProtocol ?? '', /^TLSv1\.[23]$/);
      assert.equal(sink.stats.secureConnections, 1);
      client.close();
      // The TCP socket under a STARTTLS session is counted as closed too.
      await waitUntil(() => sink.stats.openConnections === 0, 'the connection to close');
    });
  });

  void it('verifies by host name too (servername localhost)', async () => {
    await withSink(
      { tls: good },
      { requireTLS: true, tls: { ca: [ca.cert], servername: 'localhost' } },
      async (sink, client) => {
        await sendRaw(client, ENVELOPE, simpleMessage().raw);
        await sink.waitForMessages(1);
        assert.equal(sink.messages[0]?.secure, true);
      },
    );
  });

  void it('implicit TLS (secure) is recorded as secure', async () => {
    await withSink(
      { tls: good, secure: true },
      { secure: true, tls: { ca: [ca.cert] } },
      async (sink, client) => {
        await sendRaw(client, ENVELOPE, simpleMessage().raw);
        await sink.waitForMessages(1);
        assert.equal(sink.messages[0]?.secure, true);
        assert.equal(sink.stats.secureConnections, 1);
      },
    );
  });

  void it('an untrusted self-signed certificate fails verification and nothing is recorded', async () => {
    await withSink({ tls: selfSigned }, strictClient(), async (sink, client) => {
      const err = await sendExpectingError(client, ENVELOPE);
      assert.match(err.message, /self[- ]signed certificate/i);
      assert.equal(err.code, 'ESOCKET');
      assert.equal(sink.messages.length, 0);
    });
  });

  void it('an expired certificate fails verification and nothing is recorded', async () => {
    await withSink({ tls: expired }, strictClient(), async (sink, client) => {
      const err = await sendExpectingError(client, ENVELOPE);
      assert.match(err.message, /certificate has expired/i);
      assert.equal(err.code, 'ESOCKET');
      assert.equal(sink.messages.length, 0);
    });
  });

  void it('a certificate for another name fails verification and nothing is recorded', async () => {
    await withSink({ tls: wrongName }, strictClient(), async (sink, client) => {
      const err = await sendExpectingError(client, ENVELOPE);
      assert.match(err.message, /does not match certificate's altnames/i);
      assert.equal(err.code, 'ESOCKET');
      assert.equal(sink.messages.length, 0);
    });
  });

  void it('hideStartTls with requireTLS: the client refuses to go on in the clear, nothing is recorded', async () => {
    await withSink({ tls: good, hideStartTls: true }, strictClient(), async (sink, client) => {
      const err = await sendExpectingError(client, ENVELOPE);
      assert.equal(err.code, 'ETLS');
      assert.equal(err.command, 'STARTTLS');
      assert.equal(sink.messages.length, 0);
      assert.equal(sink.stats.secureConnections, 0);
    });
  });

  void it('AUTH over STARTTLS records the user and the TLS session', async () => {
    await withSink(
      { tls: good, auth: { user: 'relay-user', pass: 's3cret' } },
      { ...strictClient(), auth: { user: 'relay-user', pass: 's3cret' } },
      async (sink, client) => {
        await sendRaw(client, ENVELOPE, simpleMessage().raw);
        await sink.waitForMessages(1);
        assert.equal(sink.messages[0]?.authUser, 'relay-user');
        assert.equal(sink.messages[0]?.secure, true);
      },
    );
  });
});

void describe('sink AUTH', () => {
  const auth = { user: 'relay-user', pass: 's3cret' };

  void it('right credentials are accepted and the user is recorded', async () => {
    await withSink({ auth }, { auth: { user: auth.user, pass: auth.pass } }, async (sink, client) => {
      await sendRaw(client, ENVELOPE, simpleMessage().raw);
      await sink.waitForMessages(1);
      assert.equal(sink.messages[0]?.authUser, 'relay-user');
      assert.equal(sink.messages[0]?.secure, false);
      assert.equal(sink.stats.authFailures, 0);
    });
  });

  for (const method of ['PLAIN', 'LOGIN'] as const) {
    void it(`wrong credentials with AUTH ${method} get 535 5.7.8 and nothing is recorded`, async () => {
      await withSink(
        { auth },
        { auth: { user: auth.user, pass: 'wrong' }, authMethod: method },
        async (sink, client) => {
          const err = await sendExpectingError(client, ENVELOPE);
          assert.equal(err.code, 'EAUTH');
          assert.equal(err.responseCode, 535);
          assert.equal(err.response, '535 5.7.8 Authentication credentials invalid');
          assert.equal(sink.messages.length, 0);
          assert.equal(sink.stats.authFailures, 1);
        },
      );
    });
  }

  void it('a client without credentials is refused at MAIL FROM (AUTH is required)', async () => {
    await withSink({ auth }, {}, async (sink, client) => {
      const err = await sendExpectingError(client, ENVELOPE);
      assert.equal(err.responseCode, 530);
      assert.equal(sink.messages.length, 0);
    });
  });

  void it('a sink without auth does not offer AUTH: nodemailer then sends unauthenticated unless forceAuth is set', async () => {
    await withSink({}, { auth: { user: auth.user, pass: auth.pass } }, async (sink, client) => {
      // nodemailer skips AUTH when the server does not advertise it; the record shows no user.
      await sendRaw(client, ENVELOPE, simpleMessage().raw);
      await sink.waitForMessages(1);
      assert.equal(sink.messages[0]?.authUser, undefined);
    });
    await withSink(
      {},
      { auth: { user: auth.user, pass: auth.pass }, forceAuth: true },
      async (sink, client) => {
        const err = await sendExpectingError(client, ENVELOPE);
        assert.equal(err.code, 'EAUTH');
        assert.equal(sink.messages.length, 0);
      },
    );
  });
});
