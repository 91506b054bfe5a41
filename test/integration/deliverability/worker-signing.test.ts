import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MailroomClient } from '@mailroom/client';
import { dkimDnsRecord, loadDkimKeys, type DkimKeyConfig } from '@mailroom/mime';
import { startSink, type Sink } from '@mailroom/sink';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { message, startTestWorker, workerEnv } from '../fixtures.js';
import { verifyWithDkimpy } from './dkim-verifier.js';

const DOMAIN = 'news.example.test';
const pem = (key: { export(options: { type: 'pkcs8'; format: 'pem' }): string | Buffer }): string =>
  key.export({ type: 'pkcs8', format: 'pem' }).toString();

/**
 * What the worker sends is signed: campaign messages (compiled template, per-recipient unsubscribe headers,
 * non-ASCII merge fields) and single messages, with RSA and Ed25519 at once, checked by python3-dkim on the
 * bytes the SMTP server received.
 */
describe('worker: every message whose From domain has a key leaves DKIM-signed', () => {
  let redis: RedisServer;
  let sink: Sink;
  let client: MailroomClient;
  const keys: DkimKeyConfig[] = [
    {
      domain: DOMAIN,
      selector: 'rsa1',
      privateKey: pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
    },
    { domain: DOMAIN, selector: 'ed1', privateKey: pem(generateKeyPairSync('ed25519').privateKey) },
  ];
  const records: Record<string, string> = {};
  for (const key of loadDkimKeys(keys))
    records[`${key.selector}._domainkey.${key.domain}`] = dkimDnsRecord(key);

  before(async () => {
    redis = await startRedis();
    sink = await startSink({ keepRaw: true });
    client = new MailroomClient({ redis: redis.url });
  });
  after(async () => {
    await client.close();
    await sink.close();
    await redis.stop();
  });

  it('campaign and single messages verify with both algorithms, unsubscribe headers included', async () => {
    const file = join(redis.dir, 'dkim.json');
    writeFileSync(file, JSON.stringify(keys));
    const worker = await startTestWorker(
      workerEnv(redis, sink, {
        MAILROOM_DKIM_CONFIG_FILE: file,
        MAILROOM_UNSUBSCRIBE_URL: 'https://mail.example.test/u/',
        MAILROOM_UNSUBSCRIBE_SECRETS: 'a-test-secret-of-at-least-32-characters!',
      }),
    );
    try {
      await client.createCampaign({
        template: {
          from: { name: 'Nouvelles Mailroom', address: `news@${DOMAIN}` },
          subject: 'Bonjour {{name}}, les nouvelles de la semaine',
          text: 'Chère {{name}},\n.\nUne ligne avec un point seul au-dessus.\n',
          html: '<p>Chère <b>{{name}}</b> — 日本語のテキスト</p>',
        },
        recipients: [
          { to: 'ok-zoe@example.test', vars: { name: 'Zoé' } },
          { to: 'ok-bjorn@example.test', vars: { name: 'Björn' } },
        ],
      });
      await client.send(
        message('ok-single@example.test', { from: { name: 'Ops', address: `ops@${DOMAIN}` } }),
      );
      // Another domain has no key: it goes out unsigned, not refused.
      await client.send(message('ok-unsigned@example.test'));
      await sink.waitForMessages(4, 20_000);
      const signed = sink.messages.filter((m) => !m.rcptTo.includes('ok-unsigned@example.test'));
      const unsigned = sink.messages.find((m) => m.rcptTo.includes('ok-unsigned@example.test'));
      assert.equal(signed.length, 3);
      assert.ok(unsigned && !unsigned.headers.some(([n]) => n.toLowerCase() === 'dkim-signature'));
      const verdicts = await verifyWithDkimpy(
        signed.map((m) => m.raw!),
        records,
      );
      for (const [i, v] of verdicts.entries()) {
        assert.equal(v.signatures.length, 2, 'signed with both keys');
        assert.ok(
          v.signatures.every((s) => s.ok),
          `message ${i}: ${JSON.stringify(v.signatures)}`,
        );
      }
      const campaignMessage = signed.find((m) => m.rcptTo.includes('ok-zoe@example.test'))!;
      const dkim = campaignMessage.headers.find(([n]) => n.toLowerCase() === 'dkim-signature')![1];
      assert.match(dkim.replace(/\s+/g, ''), /h=[^;]*list-unsubscribe:[^;]*list-unsubscribe-post/i);
    } finally {
      await worker.close();
    }
  });
});
