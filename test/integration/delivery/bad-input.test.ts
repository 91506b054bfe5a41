import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ValidationError } from '@mailroom/core';
import { sendCommand } from '@mailroom/cli';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { message, testClient } from '../fixtures.js';
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Keys a message would leave behind (job, content, records). BullMQ's own queue metadata key, written when a
 * producer opens the queue, is not a message.
 */
async function messageKeys(conn: { keys(pattern: string): Promise<string[]> }): Promise<string[]> {
  return (await conn.keys('*')).filter((k) => k !== '{mailroom}:mail:meta');
}

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

/** Each bad input names the field it is about; nothing reaches Redis. */
const CASES: { name: string; input: Record<string, unknown>; field: string }[] = [
  { name: 'malformed address', input: message('not-an-address'), field: 'to' },
  { name: 'two recipients in one field', input: message('a@example.test, b@example.test'), field: 'to' },
  { name: 'quoted local part with @', input: message('"x@evil.test y"@example.test'), field: 'to' },
  { name: 'local part over 64 octets', input: message(`${'a'.repeat(65)}@example.test`), field: 'to' },
  {
    name: 'address over 254 octets',
    input: message(`${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.test`),
    field: 'to',
  },
  {
    name: 'CRLF in the subject',
    input: message('a@example.test', { subject: 'Hi\r\nBcc: victim@example.test' }),
    field: 'subject',
  },
  {
    name: 'LF in a display name',
    input: message('a@example.test', { from: { name: 'Eve\nBcc: x@y.test', address: 'eve@example.test' } }),
    field: 'from',
  },
  {
    name: 'NUL in a header value',
    input: message('a@example.test', { headers: { 'X-Campaign': 'a\u0000b' } }),
    field: 'headers.X-Campaign',
  },
  {
    name: 'structural header',
    input: message('a@example.test', { headers: { Bcc: 'x@example.test' } }),
    field: 'headers.Bcc',
  },
  {
    name: 'attachment by path',
    input: message('a@example.test', {
      attachments: [{ filename: 'p.txt', path: '/etc/passwd', content: '' }],
    }),
    field: 'attachments[0]',
  },
  {
    name: 'oversized message',
    input: message('a@example.test', { text: 'x'.repeat(300_000) }),
    field: '(message)',
  },
];

describe('bad input is refused, naming the field, and nothing is queued', () => {
  let redis: RedisServer;
  let baseline: string[];
  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
  });
  after(async () => {
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const client = testClient(redis, { maxMessageBytes: 256 * 1024 });
      const conn = redis.client();
      try {
        await conn.flushdb();
        await client.ready();
        await assert.rejects(client.send(c.input), (err: unknown) => {
          assert.ok(err instanceof ValidationError, `ValidationError, got ${String(err)}`);
          assert.ok(
            err.issues.some((i) => i.field.startsWith(c.field)),
            `an issue names ${c.field}: ${JSON.stringify(err.issues)}`,
          );
          return true;
        });
        assert.deepEqual(await messageKeys(conn), [], 'nothing about the message was written');
      } finally {
        await client.close();
        conn.disconnect();
      }
    });
  }

  it('a batch with one bad message queues none of it', async () => {
    const client = testClient(redis);
    const conn = redis.client();
    try {
      await conn.flushdb();
      await client.ready();
      await assert.rejects(
        client.sendMany([
          message('ok@example.test'),
          message('bad@@example.test'),
          message('ok2@example.test'),
        ]),
        (err: unknown) => err instanceof ValidationError && err.issues.some((i) => i.field === '[1].to'),
      );
      assert.deepEqual(await messageKeys(conn), []);
    } finally {
      await client.close();
      conn.disconnect();
    }
  });

  it('mailroom send: bad JSON names --json; a bad field names the field; exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-cli-'));
    const conn = redis.client();
    try {
      await conn.flushdb();
      const badJson = join(dir, 'bad.json');
      writeFileSync(badJson, '{"from": "a@example.test", "to": ');
      let out = capture();
      let err = capture();
      assert.equal(await sendCommand({ json: badJson, redisUrl: redis.url }, out.stream, err.stream), 2);
      assert.match(err.text(), /^--json: .* is not valid JSON/);

      const badField = join(dir, 'field.json');
      writeFileSync(badField, JSON.stringify(message('a@example.test', { subject: 'x\ny' })));
      out = capture();
      err = capture();
      assert.equal(await sendCommand({ json: badField, redisUrl: redis.url }, out.stream, err.stream), 2);
      assert.match(err.text(), /^subject: /m);
      assert.equal(out.text(), '');
      assert.deepEqual(await messageKeys(conn), []);

      const good = join(dir, 'good.json');
      writeFileSync(good, JSON.stringify(message('a@example.test')));
      out = capture();
      assert.equal(await sendCommand({ json: good, redisUrl: redis.url }, out.stream, err.stream), 0);
      const receipt = JSON.parse(out.text()) as { id: string; messageId: string };
      assert.match(receipt.messageId, /^<[0-9a-z]{26}@mailroom\.example>$/);
      assert.ok((await messageKeys(conn)).length > 0, 'the good message was queued');
    } finally {
      conn.disconnect();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
