import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink, type SinkOptions } from '@mailroom/sink';
import type { RelayConfig } from '@mailroom/smtp';
import {
  createSelfSignedCertificate,
  createTestCertificateAuthority,
  type IssuedCertificate,
} from '../../harness/certs.js';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import {
  CASE_TIMEOUT_MS,
  SENDER_KINDS,
  attempt,
  buildSender,
  relayConfig,
  startScriptedServer,
  type Sender,
  type SenderKind,
} from './conformance-kit.js';

/**
 * TLS and AUTH, the same test bodies run against both senders: certificates from a private CA are verified,
 * a certificate that cannot be verified or a relay without STARTTLS gets nothing at all (configuration
 * outcome, never plaintext), and credentials are never skipped.
 */

const CREDENTIALS = { user: 'mailroom', pass: 'conformance-app-password' };
const LOCAL_NAMES = ['localhost', '127.0.0.1'];

let caCert: string;
let trusted: IssuedCertificate;
let wrongName: IssuedCertificate;
let expired: IssuedCertificate;
let selfSigned: IssuedCertificate;
let baseline: string[];

before(async () => {
  baseline = snapshotResources();
  const ca = await createTestCertificateAuthority();
  caCert = ca.cert;
  [trusted, wrongName, expired, selfSigned] = await Promise.all([
    ca.issue({ commonName: 'localhost', altNames: LOCAL_NAMES }),
    ca.issue({ commonName: 'elsewhere.mailroom.test' }),
    ca.issue({ commonName: 'localhost', altNames: LOCAL_NAMES, expired: true }),
    createSelfSignedCertificate('localhost', LOCAL_NAMES),
  ]);
});

after(async () => {
  await assertNoResourceLeaks(baseline);
});

/** Runs `body` with a sink and a sender of `kind` configured by `configure(sink port)`, then closes both. */
async function withSinkAndSender(
  kind: SenderKind,
  sinkOptions: SinkOptions,
  configure: (port: number) => RelayConfig,
  body: (sink: Sink, sender: Sender) => Promise<void>,
): Promise<void> {
  const sink = await startSink(sinkOptions);
  const sender = buildSender(kind, configure(sink.port));
  try {
    await body(sink, sender);
  } finally {
    sender.close();
    await sink.close();
  }
}

for (const kind of SENDER_KINDS) {
  void describe(`${kind} sender: TLS and AUTH`, () => {
    void it(
      'STARTTLS with a private-CA certificate, verified, and AUTH: delivered over TLS as the user',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withSinkAndSender(
          kind,
          { tls: trusted, auth: CREDENTIALS },
          (port) => relayConfig(port, { tlsMode: 'starttls', ca: caCert, auth: CREDENTIALS }),
          async (sink, sender) => {
            await sender.verify();
            const results = await Promise.all(
              ['alice', 'bob', 'carol'].map((name) => attempt(sender, `${name}-${kind}@example.test`)),
            );
            for (const result of results)
              assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
            assert.equal(sink.messages.length, 3);
            for (const record of sink.messages) {
              assert.equal(record.secure, true, 'the message travelled under TLS');
              assert.match(record.tlsProtocol ?? '', /^TLSv1\.[23]$/);
              assert.equal(record.authUser, CREDENTIALS.user);
            }
            assert.equal(sink.stats.authFailures, 0);
          },
        );
      },
    );

    void it(
      'implicit TLS (port 465 style) with a verified certificate: delivered',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withSinkAndSender(
          kind,
          { tls: trusted, secure: true, auth: CREDENTIALS },
          (port) => relayConfig(port, { tlsMode: 'tls', ca: caCert, auth: CREDENTIALS }),
          async (sink, sender) => {
            await sender.verify();
            const result = await attempt(sender, `dave-${kind}@example.test`);
            assert.equal(result.outcome, 'delivered', JSON.stringify(result.observation));
            assert.equal(sink.messages.length, 1);
            assert.equal(sink.messages[0]?.secure, true);
            assert.equal(sink.messages[0]?.authUser, CREDENTIALS.user);
          },
        );
      },
    );

    const badCertificates = [
      ['an untrusted (self-signed) certificate', () => selfSigned],
      ['a certificate for another name', () => wrongName],
      ['an expired certificate', () => expired],
    ] as const;
    for (const [what, certificate] of badCertificates) {
      for (const tlsMode of ['starttls', 'tls'] as const) {
        void it(
          `${tlsMode}: ${what} is a configuration fault and nothing is delivered`,
          { timeout: CASE_TIMEOUT_MS },
          async () => {
            await withSinkAndSender(
              kind,
              { tls: certificate(), secure: tlsMode === 'tls' },
              (port) => relayConfig(port, { tlsMode, ca: caCert }),
              async (sink, sender) => {
                const result = await attempt(sender, `erin-${kind}@example.test`);
                assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
                assert.equal(result.reason, 'tls_failed');
                assert.equal(result.bodyWritten, false);
                await assert.rejects(sender.verify());
                assert.equal(sink.messages.length, 0, 'nothing was delivered');
                assert.equal(sink.stats.secureConnections, 0, 'no TLS session was completed');
              },
            );
          },
        );
      }
    }

    void it(
      'STARTTLS required but not offered: configuration fault, nothing delivered',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withSinkAndSender(
          kind,
          { tls: trusted, hideStartTls: true },
          (port) => relayConfig(port, { tlsMode: 'starttls', ca: caCert }),
          async (sink, sender) => {
            const result = await attempt(sender, `frank-${kind}@example.test`);
            assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
            assert.equal(result.classification.replyClass, 'tls');
            assert.equal(result.bodyWritten, false);
            assert.equal(sink.messages.length, 0);
          },
        );
      },
    );

    void it(
      'STARTTLS required but not offered: no envelope, credentials or body in plaintext',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const server = await startScriptedServer({
          ehlo: ['PIPELINING', 'AUTH PLAIN LOGIN', 'SIZE 1000000'],
        });
        const sender = buildSender(
          kind,
          relayConfig(server.port, { tlsMode: 'starttls', ca: caCert, auth: CREDENTIALS }),
        );
        try {
          const result = await attempt(sender, `grace-${kind}@example.test`);
          assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
          assert.ok(
            server.lines.some((line) => line.startsWith('EHLO ')),
            'the session did start',
          );
          const leaked = server.lines.filter((line) => !/^(?:EHLO|STARTTLS|QUIT)\b/i.test(line));
          assert.deepEqual(leaked, [], 'only EHLO, STARTTLS and QUIT were sent in the clear');
          assert.ok(!server.lines.join('\n').includes(Buffer.from(CREDENTIALS.pass).toString('base64')));
        } finally {
          sender.close();
          await server.close();
        }
      },
    );

    void it(
      'wrong credentials: configuration fault (auth_failed), nothing delivered',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withSinkAndSender(
          kind,
          { tls: trusted, auth: CREDENTIALS },
          (port) =>
            relayConfig(port, {
              tlsMode: 'starttls',
              ca: caCert,
              auth: { user: CREDENTIALS.user, pass: 'wrong-password' },
            }),
          async (sink, sender) => {
            const result = await attempt(sender, `heidi-${kind}@example.test`);
            assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
            assert.equal(result.reason, 'auth_failed');
            assert.equal(result.observation.code, 'EAUTH');
            assert.ok(
              !JSON.stringify(result.observation).includes('wrong-password'),
              'no secret in the error',
            );
            assert.ok(sink.stats.authFailures >= 1);
            assert.equal(sink.messages.length, 0);
          },
        );
      },
    );

    void it(
      'credentials configured but the relay offers no AUTH: configuration fault, nothing delivered',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        await withSinkAndSender(
          kind,
          { tls: trusted },
          (port) => relayConfig(port, { tlsMode: 'starttls', ca: caCert, auth: CREDENTIALS }),
          async (sink, sender) => {
            const result = await attempt(sender, `ivan-${kind}@example.test`);
            assert.equal(result.outcome, 'config', JSON.stringify(result.observation));
            assert.equal(result.reason, 'auth_failed');
            assert.equal(sink.messages.length, 0, 'nothing was sent unauthenticated');
          },
        );
      },
    );
  });
}
