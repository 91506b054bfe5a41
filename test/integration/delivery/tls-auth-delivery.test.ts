import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink } from '@mailroom/sink';
import { createTestCertificateAuthority, createSelfSignedCertificate } from '../../harness/certs.js';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { waitFor } from '../../harness/wait-for.js';
import { jobReader, message, memoryLogger, startTestWorker, testClient, workerEnv } from '../fixtures.js';

describe('delivery over TLS to a relay that requires AUTH', () => {
  let redis: RedisServer;
  let baseline: string[];
  let caCert: string;
  let leaf: { key: string; cert: string };

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    const ca = await createTestCertificateAuthority();
    caCert = ca.cert;
    leaf = await ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  });

  after(async () => {
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('delivers over STARTTLS with AUTH and a verified certificate, with the Message-ID it promised', async () => {
    const sink = await startSink({ tls: leaf, auth: { user: 'mailroom', pass: 's3cret-app-password' } });
    const { logger, lines } = memoryLogger('info');
    const caFile = await import('node:fs/promises').then(async (fs) => {
      const path = `${redis.dir}/relay-ca.pem`;
      await fs.writeFile(path, caCert);
      return path;
    });
    const worker = await startTestWorker(
      workerEnv(redis, sink, {
        MAILROOM_SMTP_TLS: 'starttls',
        MAILROOM_SMTP_CA_FILE: caFile,
        MAILROOM_SMTP_USER: 'mailroom',
        MAILROOM_SMTP_PASS: 's3cret-app-password',
      }),
      logger,
    );
    const client = testClient(redis);
    const conn = redis.client();
    const jobs = jobReader(conn);
    try {
      const receipts = [];
      for (const to of ['alice@example.test', 'bob@example.test', 'carol@example.test']) {
        receipts.push(await client.send(message(to)));
      }
      await sink.waitForMessages(3, 15_000);
      for (const receipt of receipts) {
        const result = await jobs.finished(receipt.id);
        assert.equal(result.state, 'delivered');
        assert.equal(result.attempts, 1);
        assert.equal(result.code, 250);
      }
      assert.equal(sink.messages.length, 3);
      for (const record of sink.messages) {
        assert.equal(record.secure, true, 'every message travelled over TLS');
        assert.equal(record.authUser, 'mailroom');
        assert.equal(record.mailFrom, 'sender@mailroom.example');
        assert.equal(record.rcptTo.length, 1);
      }
      const sentIds = sink.messages.map((m) => m.messageId).sort();
      assert.deepEqual(sentIds, receipts.map((r) => r.messageId).sort());
      const metrics = await worker.registry.getSingleMetricAsString('mailroom_messages_terminal_total');
      assert.match(metrics, /mailroom_messages_terminal_total\{outcome="delivered",domain="other"\} 3/);
      // Neither the password nor any recipient address reaches info-level logs.
      const log = lines();
      assert.ok(log.includes('message finished'), 'deliveries are logged');
      assert.ok(!log.includes('s3cret-app-password'));
      assert.ok(!/alice@|bob@|carol@/.test(log), 'no recipient address in info logs');
    } finally {
      await worker.close();
      await client.close();
      await jobs.queue.close();
      conn.disconnect();
      await sink.close();
    }
  });

  for (const variant of ['untrusted certificate', 'STARTTLS not offered'] as const) {
    it(`${variant}: nothing delivered, no plaintext fallback, no bounce`, async () => {
      const tls =
        variant === 'untrusted certificate'
          ? await createSelfSignedCertificate('localhost', ['localhost', '127.0.0.1'])
          : leaf;
      const sink = await startSink({ tls, hideStartTls: variant === 'STARTTLS not offered' });
      const caFile = `${redis.dir}/relay-ca-${variant.length}.pem`;
      await import('node:fs/promises').then((fs) => fs.writeFile(caFile, caCert));
      const worker = await startTestWorker(
        workerEnv(redis, sink, { MAILROOM_SMTP_TLS: 'starttls', MAILROOM_SMTP_CA_FILE: caFile }),
      );
      const client = testClient(redis);
      const conn = redis.client();
      const jobs = jobReader(conn);
      try {
        const receipt = await client.send(message('dave@example.test'));
        // The fault is seen more than once (the relay is probed again after each pause) and never bounces.
        await waitFor(
          async () => {
            const text = await worker.registry.getSingleMetricAsString('mailroom_relay_config_faults_total');
            return /reason="tls"\} [2-9]/.test(text);
          },
          { timeoutMs: 15_000, what: 'two TLS configuration faults' },
        );
        const job = await jobs.job(receipt.id);
        assert.ok(job, 'the message is still queued');
        const state = await job.getState();
        assert.ok(['delayed', 'waiting', 'active'].includes(state), `message kept for later, state ${state}`);
        assert.equal(job.attemptsMade, 0, 'configuration faults spend no attempt');
        const status = await jobs.status(receipt.id);
        assert.ok(
          ['queued', 'sending'].includes(status.state),
          `still pending in the ledger (${status.state})`,
        );
        assert.equal(status.history.length, 0, 'no attempt recorded against the message');
        assert.equal(sink.messages.length, 0, 'nothing reached the sink');
        const terminal = await worker.registry.getSingleMetricAsString('mailroom_messages_terminal_total');
        assert.match(terminal, /outcome="bounced",domain="other"\} 0/);
      } finally {
        await worker.close();
        await client.close();
        await jobs.queue.close();
        conn.disconnect();
        await sink.close();
      }
    });
  }
});
