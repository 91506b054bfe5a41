import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { MailroomClient } from '@mailroom/client';
import { buildApiApp, createApiRedis, loadApiConfig } from '@mailroom/api';
import { apiKeyCommand } from '@mailroom/cli';
import { Ledger } from '@mailroom/queue';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { message } from '../fixtures.js';
import { PEPPER, auth, post, startTestApi, type ErrorBody, type TestApi } from './api-fixtures.js';

/** The secret part of a key: everything after `mr_<prefix>_` (base64url may itself hold `_`). */
function secretOf(key: string): string {
  return key.slice('mr_0123456789_'.length);
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

/**
 * Sends `total` bytes of body behind `head` on a raw socket, 64 KiB at a time with backpressure, and stops
 * as soon as the server answers or closes. Resolves with the status line and how many body bytes were
 * written.
 */
async function sendLargeBody(
  url: string,
  head: string,
  total: number,
): Promise<{ statusLine: string; written: number; closed: boolean }> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let response = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    response += chunk.toString('latin1');
  });
  socket.on('error', () => undefined); // EPIPE / ECONNRESET once the server closed: expected
  socket.on('close', () => {
    closed = true;
  });
  socket.write(head);
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let written = 0;
  const maxChunks = Math.ceil(total / chunk.length);
  for (let i = 0; i < maxChunks && response === '' && !closed && !socket.destroyed; i++) {
    const piece = head.includes('chunked')
      ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
      : chunk;
    if (!socket.write(piece)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        const timer = setTimeout(done, 2000);
        socket.once('drain', done);
        socket.once('close', done);
      });
    }
    written += chunk.length;
  }
  // The answer may still be on its way once writing stopped: wait for it (bounded).
  for (let i = 0; i < 100 && !response.includes('\r\n') && !closed; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  socket.destroy();
  return { statusLine: response.split('\r\n')[0] ?? '', written, closed };
}

/**
 * sendLargeBody until an answer is read, at most 3 times. The server answers and closes while the client is
 * still writing; the client's further writes then draw a TCP reset, and a reset that arrives before the
 * client has read the answer discards it (Linux drops unread data on RST), leaving nothing to read. Each
 * attempt must still have been stopped before the whole body was written.
 */
async function sendLargeBodyAnswered(
  url: string,
  head: string,
  total: number,
): Promise<{ statusLine: string; written: number; attempts: number }> {
  let last = { statusLine: '', written: 0 };
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    last = await sendLargeBody(url, head, total);
    assert.ok(last.written < total, `attempt ${attempt} stopped at ${last.written} of ${total} bytes`);
    if (last.statusLine !== '') return { ...last, attempts: attempt };
  }
  return { ...last, attempts: 3 };
}

describe('HTTP API: authentication, errors, limits, OpenAPI', () => {
  let redis: RedisServer;
  let api: TestApi;
  let baseline: string[];
  let sendKey: string;
  let readKey: string;
  let adminKey: string;
  const keysSeen: string[] = [];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    api = await startTestApi(redis, {
      MAILROOM_API_MAX_ATTACHMENTS: '2',
      MAILROOM_API_MAX_EXTRA_HEADERS: '2',
    });
    sendKey = await api.key(['send']);
    readKey = await api.key(['read']);
    adminKey = await api.key(['admin'], ['*']);
    keysSeen.push(sendKey, readKey, adminKey);
  });

  after(async () => {
    await api.close();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('refuses a missing, malformed, unknown, wrong, revoked or expired key with 401, never saying which', async () => {
    const valid = await api.key(['send']);
    const revoked = await api.key(['send']);
    const expired = await api.key(['send']);
    keysSeen.push(valid, revoked, expired);
    await api.keys.revoke(revoked.split('_')[1]!);
    const admin = redis.client();
    await admin.hset(`{mailroom}:api:key:${expired.split('_')[1]!}`, 'expiresAt', String(Date.now() - 1000));
    admin.disconnect();
    const wrongSecret = `${valid.slice(0, -2)}${valid.endsWith('AA') ? 'BB' : 'AA'}`;
    const unknown = `mr_0000000000_${valid.split('_').slice(2).join('_')}`;
    const cases: [string, Record<string, string>][] = [
      ['missing', { 'content-type': 'application/json' }],
      ['not a key', auth('not-a-key')],
      ['another scheme', { 'content-type': 'application/json', authorization: `Token ${valid}` }],
      ['unknown prefix', auth(unknown)],
      ['wrong secret', auth(wrongSecret)],
      ['revoked', auth(revoked)],
      ['expired', auth(expired)],
    ];
    const messages = new Set<string>();
    for (const [name, headers] of cases) {
      const r = await post(`${api.url}/v1/messages`, message('ok-auth@example.test'), headers);
      assert.equal(r.status, 401, `${name}: 401`);
      assert.equal((r.body as ErrorBody).error.code, 'ERR_UNAUTHORIZED', name);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="mailroom"/, name);
      if (name !== 'missing' && name !== 'another scheme') messages.add((r.body as ErrorBody).error.message);
    }
    assert.equal(messages.size, 1, `one message for every invalid key: ${[...messages].join(' | ')}`);
    const ok = await post(`${api.url}/v1/messages`, message('ok-auth@example.test'), auth(valid));
    assert.equal(ok.status, 202, 'the valid key works');
    const basic = Buffer.from(`anyone:${valid}`).toString('base64');
    const viaBasic = await post(`${api.url}/v1/messages`, message('ok-basic@example.test'), {
      'content-type': 'application/json',
      authorization: `Basic ${basic}`,
    });
    assert.equal(viaBasic.status, 202, 'HTTP Basic with the key as password works too');
  });

  it('refuses a key without the route scope with 403 naming the scope', async () => {
    const send = await post(`${api.url}/v1/messages`, message('ok-scope@example.test'), auth(readKey));
    assert.equal(send.status, 403);
    assert.equal((send.body as ErrorBody).error.code, 'ERR_FORBIDDEN');
    assert.match((send.body as ErrorBody).error.message, /"send"/);
    const read = await fetch(`${api.url}/v1/messages/01m84hek00000000000000000a`, { headers: auth(sendKey) });
    assert.equal(read.status, 403);
    const metrics = await fetch(`${api.url}/metrics`, { headers: auth(sendKey) });
    assert.equal(metrics.status, 403, '/metrics needs an admin key');
    const metricsAdmin = await fetch(`${api.url}/metrics`, { headers: auth(adminKey) });
    assert.equal(metricsAdmin.status, 200);
    assert.match(
      await metricsAdmin.text(),
      /mailroom_api_requests_total\{route="\/v1\/messages",method="POST",status="202"\}/,
    );
    const adminRead = await fetch(`${api.url}/v1/messages/01m84hek00000000000000000a`, {
      headers: auth(adminKey),
    });
    assert.equal(adminRead.status, 404, 'admin includes read: the id is unknown');
  });

  it('refuses a From outside the key sender domains with 403 naming the field, and queues nothing', async () => {
    const conn = redis.client();
    const ledger = new Ledger(conn, { prefix: '{mailroom}' });
    try {
      const before = (await ledger.stats()).accepted ?? 0;
      const outside = await post(
        `${api.url}/v1/messages`,
        message('ok-domain@example.test', { from: 'Eve <eve@evil.example>' }),
        auth(sendKey),
      );
      assert.equal(outside.status, 403);
      assert.deepEqual((outside.body as ErrorBody).error.fields, [
        { field: 'from', message: 'sender domain evil.example is not allowed for this API key' },
      ]);
      const sub = await post(
        `${api.url}/v1/messages`,
        message('ok-domain@example.test', { from: 'x@news.mailroom.example' }),
        auth(sendKey),
      );
      assert.equal(sub.status, 403, 'a subdomain is another domain unless the key says *.domain');
      const wildcard = await api.key(['send'], ['*.mailroom.example']);
      keysSeen.push(wildcard);
      const allowed = await post(
        `${api.url}/v1/messages`,
        message('ok-domain@example.test', { from: 'x@news.mailroom.example' }),
        auth(wildcard),
      );
      assert.equal(allowed.status, 202, '*.mailroom.example allows news.mailroom.example');
      const batch = await post(
        `${api.url}/v1/messages/batch`,
        {
          messages: [
            message('ok-b1@example.test'),
            message('ok-b2@example.test', { from: 'a@evil.example' }),
          ],
        },
        auth(sendKey),
      );
      assert.equal(batch.status, 403);
      assert.deepEqual(
        (batch.body as ErrorBody).error.fields?.map((f) => f.field),
        ['messages[1].from'],
      );
      assert.equal((await ledger.stats()).accepted ?? 0, before + 1, 'only the allowed message was accepted');
    } finally {
      conn.disconnect();
    }
  });

  it('answers 400 for malformed JSON and 422 naming every field of a well-formed but invalid body', async () => {
    const malformed = await post(
      `${api.url}/v1/messages`,
      '{"from": "a@mailroom.example", "to": ',
      auth(sendKey),
    );
    assert.equal(malformed.status, 400);
    assert.equal((malformed.body as ErrorBody).error.code, 'ERR_BAD_REQUEST');
    const proto = await post(`${api.url}/v1/messages`, '{"__proto__": {"x": 1}}', auth(sendKey));
    assert.equal(proto.status, 400, 'prototype poisoning is malformed');
    const invalid = await post(
      `${api.url}/v1/messages`,
      message('not-an-address', { subject: 'Hi\r\nBcc: victim@example.test', cc: 'x@example.test' }),
      auth(sendKey),
    );
    assert.equal(invalid.status, 422);
    const body = invalid.body as ErrorBody;
    assert.equal(body.error.code, 'ERR_VALIDATION');
    const fields = body.error.fields?.map((f) => f.field) ?? [];
    for (const field of ['to', 'subject', 'cc'])
      assert.ok(fields.includes(field), `names ${field}: ${fields.join(', ')}`);
    const shape = await post(
      `${api.url}/v1/messages`,
      { from: 1, to: 'a@example.test', subject: 2 },
      auth(sendKey),
    );
    assert.equal(shape.status, 422);
    assert.deepEqual((shape.body as ErrorBody).error.fields?.map((f) => f.field).sort(), ['from', 'subject']);
    const badKey = await post(`${api.url}/v1/messages`, message('ok-idem@example.test'), {
      ...auth(sendKey),
      'idempotency-key': 'has spaces in it',
    });
    assert.equal(badKey.status, 422);
    assert.equal((badKey.body as ErrorBody).error.fields?.[0]?.field, 'Idempotency-Key');
    const wrongType = await post(`${api.url}/v1/messages`, 'from=a', {
      ...auth(sendKey),
      'content-type': 'text/plain',
    });
    assert.equal(wrongType.status, 415);
  });

  it('enforces the API counts: attachments, extra headers, batch size', async () => {
    const attachment = { filename: 'a.txt', content: Buffer.from('hello').toString('base64') };
    const tooMany = await post(
      `${api.url}/v1/messages`,
      message('ok-count@example.test', { attachments: [attachment, attachment, attachment] }),
      auth(sendKey),
    );
    assert.equal(tooMany.status, 422);
    assert.deepEqual(
      (tooMany.body as ErrorBody).error.fields?.map((f) => f.field),
      ['attachments'],
    );
    const headers = await post(
      `${api.url}/v1/messages`,
      message('ok-count@example.test', { headers: { 'X-A': '1', 'X-B': '2', 'X-C': '3' } }),
      auth(sendKey),
    );
    assert.equal(headers.status, 422);
    assert.deepEqual(
      (headers.body as ErrorBody).error.fields?.map((f) => f.field),
      ['headers'],
    );
    const batch = await post(
      `${api.url}/v1/messages/batch`,
      { messages: Array.from({ length: 101 }, (_, i) => message(`ok-${i}@example.test`)) },
      auth(sendKey),
    );
    assert.equal(batch.status, 422);
    assert.deepEqual(
      (batch.body as ErrorBody).error.fields?.map((f) => f.field),
      ['messages'],
    );
  });

  it('refuses a 50 MB body with 413 before reading it whole (Content-Length and chunked)', async (t) => {
    const total = 50 * 1024 * 1024;
    const withLength = await sendLargeBodyAnswered(
      api.url,
      `POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${sendKey}\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`,
      total,
    );
    assert.match(withLength.statusLine, /^HTTP\/1\.1 413 /);
    assert.ok(withLength.written < total, `stopped at ${withLength.written} of ${total} bytes`);
    const chunked = await sendLargeBodyAnswered(
      api.url,
      `POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${sendKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      total,
    );
    assert.match(chunked.statusLine, /^HTTP\/1\.1 413 /);
    assert.ok(chunked.written < total, `stopped at ${chunked.written} of ${total} bytes`);
    t.diagnostic(
      `50 MB body: answered 413 after ${withLength.written} bytes written (Content-Length), ${chunked.written} (chunked; limit 16 MiB)`,
    );
    const unauthenticated = await sendLargeBodyAnswered(
      api.url,
      `POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`,
      total,
    );
    assert.match(unauthenticated.statusLine, /^HTTP\/1\.1 401 /, 'no key: refused before the body');
    assert.ok(unauthenticated.written < total);
  });

  it('answers an unexpected error with 500 and a generic body: no stack, no internals', async () => {
    const apiRedis = createApiRedis(redis.url, { timeoutMs: 1000 });
    const client = new MailroomClient({ redis: apiRedis });
    const logs = capture();
    const config = loadApiConfig({ MAILROOM_API_KEY_PEPPER: PEPPER, MAILROOM_API_QUEUE_UI: 'false' });
    const app = await buildApiApp({
      config,
      redis: apiRedis,
      client,
      logger: { level: 'info', stream: logs.stream },
    });
    app.get('/v1/boom', { config: { scope: 'public' } }, () => {
      throw new Error('secret internals at /srv/mailroom/boom.ts:42 password=hunter2');
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address() as { port: number };
      const response = await fetch(`http://127.0.0.1:${address.port}/v1/boom`);
      assert.equal(response.status, 500);
      const text = await response.text();
      assert.deepEqual(JSON.parse(text), { error: { code: 'ERR_INTERNAL', message: 'internal error' } });
      assert.doesNotMatch(text, /secret|srv|hunter2|at /);
      assert.match(logs.text(), /request failed/, 'the error is logged on the server');
    } finally {
      await app.close();
      await client.close();
      apiRedis.disconnect();
    }
  });

  it('answers 429 with Retry-After past a key rate, per key', async () => {
    const limited = await startTestApi(redis, {
      MAILROOM_API_RATE_PER_SECOND: '1',
      MAILROOM_API_RATE_BURST: '3',
    });
    try {
      const key = await limited.key(['read']);
      const other = await limited.key(['read']);
      keysSeen.push(key, other);
      const statuses = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const r = await fetch(`${limited.url}/v1/messages/01m84hek00000000000000000a`, {
            headers: auth(key),
          });
          return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() };
        }),
      );
      const refused = statuses.filter((s) => s.status === 429);
      assert.ok(
        refused.length >= 1,
        `some requests were refused: ${statuses.map((s) => s.status).join(',')}`,
      );
      for (const r of refused) {
        assert.ok(Number(r.retryAfter) >= 1, `Retry-After in seconds: ${r.retryAfter}`);
        assert.equal((JSON.parse(r.body) as ErrorBody).error.code, 'ERR_RATE_LIMITED');
      }
      const otherKey = await fetch(`${limited.url}/v1/messages/01m84hek00000000000000000a`, {
        headers: auth(other),
      });
      assert.equal(otherKey.status, 404, 'another key has its own bucket');
    } finally {
      await limited.close();
    }
  });

  it('serves the queue UI and Swagger UI only to authenticated browsers (Basic with the key)', async () => {
    const anonymous = await fetch(`${api.url}/admin/queues`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /);
    const basic = (key: string) => ({
      authorization: `Basic ${Buffer.from(`ui:${key}`).toString('base64')}`,
    });
    assert.equal((await fetch(`${api.url}/admin/queues`, { headers: basic(sendKey) })).status, 403);
    const ui = await fetch(`${api.url}/admin/queues`, { headers: basic(adminKey) });
    assert.equal(ui.status, 200);
    assert.match(await ui.text(), /<html/i);
    const queues = await fetch(`${api.url}/admin/queues/api/queues`, { headers: basic(adminKey) });
    assert.equal(queues.status, 200);
    assert.match(await queues.text(), /"readOnlyMode":true/);
    assert.equal((await fetch(`${api.url}/v1/docs/`)).status, 401);
    assert.equal((await fetch(`${api.url}/v1/docs/`, { headers: basic(readKey) })).status, 200);
  });

  it('serves an OpenAPI 3.1 document, without a key, listing every route with valid schemas', async () => {
    const response = await fetch(`${api.url}/v1/openapi.json`);
    assert.equal(response.status, 200);
    const doc = (await response.json()) as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>>;
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
    };
    // The parts of the OpenAPI 3.1 document schema that a generated document could get wrong.
    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    const operation = {
      type: 'object',
      required: ['responses'],
      properties: {
        summary: { type: 'string' },
        parameters: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'in'],
            properties: { in: { enum: ['query', 'header', 'path', 'cookie'] }, name: { type: 'string' } },
          },
        },
        requestBody: { type: 'object', required: ['content'] },
        responses: {
          type: 'object',
          minProperties: 1,
          propertyNames: { pattern: '^([1-5][0-9]{2}|default)$' },
          additionalProperties: { type: 'object', required: ['description'] },
        },
      },
    };
    const validDocument = ajv.compile({
      type: 'object',
      required: ['openapi', 'info', 'paths'],
      properties: {
        openapi: { type: 'string', pattern: '^3\\.1\\.\\d+$' },
        info: { type: 'object', required: ['title', 'version'] },
        paths: {
          type: 'object',
          propertyNames: { pattern: '^/' },
          additionalProperties: {
            type: 'object',
            propertyNames: {
              enum: ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'parameters'],
            },
            additionalProperties: operation,
          },
        },
        components: { type: 'object' },
      },
    });
    assert.ok(validDocument(doc), JSON.stringify(validDocument.errors));
    const routes = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    assert.deepEqual(routes, [
      'DELETE /v1/suppressions',
      'GET /v1/campaigns/{id}',
      'GET /v1/messages/{id}',
      'GET /v1/suppressions',
      'POST /v1/campaigns',
      'POST /v1/campaigns/{id}/cancel',
      'POST /v1/campaigns/{id}/pause',
      'POST /v1/campaigns/{id}/recipients',
      'POST /v1/campaigns/{id}/resend-failed',
      'POST /v1/campaigns/{id}/resume',
      'POST /v1/messages',
      'POST /v1/messages/batch',
      'POST /v1/messages/{id}/cancel',
      'POST /v1/suppressions',
      'PUT /v1/campaigns/{id}/recipients',
    ]);
    // Every schema in the document is a valid JSON Schema (2020-12, as OpenAPI 3.1 uses).
    const schemas: unknown[] = Object.values(doc.components.schemas);
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const r of Object.values(op.responses) as { content?: Record<string, { schema: unknown }> }[]) {
          for (const c of Object.values(r.content ?? {})) schemas.push(c.schema);
        }
        const body = op.requestBody as { content: Record<string, { schema: unknown }> } | undefined;
        for (const c of Object.values(body?.content ?? {})) schemas.push(c.schema);
      }
    }
    const withComponents = new Ajv2020({ strict: false, validateFormats: false });
    withComponents.addSchema({ $id: 'doc', components: doc.components }, 'doc');
    for (const schema of schemas) {
      const text = JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/');
      assert.doesNotThrow(() => withComponents.compile(JSON.parse(text) as object), text.slice(0, 200));
    }
    const messageBody = doc.paths['/v1/messages']?.post?.requestBody as {
      content: Record<string, { schema: { properties: Record<string, unknown>; required: string[] } }>;
    };
    assert.deepEqual(messageBody.content['application/json']?.schema.required.sort(), [
      'from',
      'subject',
      'to',
    ]);
    assert.ok(doc.components.securitySchemes.apiKey, 'the bearer scheme is described');
  });

  it('mailroom api-key create, list, rotate, revoke', async () => {
    const cli = (
      action: 'create' | 'list' | 'revoke' | 'rotate',
      args: string[],
      flags: Record<string, string>,
    ) => {
      const out = capture();
      const err = capture();
      return apiKeyCommand(
        action,
        args,
        { redisUrl: redis.url, pepper: PEPPER, ...flags },
        out.stream,
        err.stream,
      ).then((code) => ({ code, out: out.text(), err: err.text() }));
    };
    const noDomains = await cli('create', [], { scopes: 'send' });
    assert.equal(noDomains.code, 2);
    assert.match(noDomains.err, /^--domains: /);
    const noPepper = await cli('create', [], { scopes: 'read', pepper: '' });
    assert.equal(noPepper.code, 2);
    assert.match(noPepper.err, /^MAILROOM_API_KEY_PEPPER: /);
    const badScope = await cli('create', [], { scopes: 'send,root', domains: 'mailroom.example' });
    assert.equal(badScope.code, 2);
    assert.match(badScope.err, /^scopes: "root" is not one of send, read, admin/);

    const created = await cli('create', [], {
      scopes: 'send,read',
      domains: 'mailroom.example',
      name: 'cli test',
    });
    assert.equal(created.code, 0, created.err);
    const { key, prefix } = JSON.parse(created.out) as { key: string; prefix: string };
    keysSeen.push(key);
    assert.match(key, /^mr_[0-9a-z]{10}_[A-Za-z0-9_-]{43}$/);
    assert.equal(
      (await post(`${api.url}/v1/messages`, message('ok-cli@example.test'), auth(key))).status,
      202,
    );

    const listed = await cli('list', [], { pepper: '' });
    assert.equal(listed.code, 0, 'listing needs no pepper');
    const mine = listed.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((r) => r.prefix === prefix);
    assert.deepEqual(mine?.scopes, ['send', 'read']);
    assert.ok(!listed.out.includes(secretOf(key)), 'the list never shows a secret');
    const admin = redis.client();
    const stored = await admin.hgetall(`{mailroom}:api:key:${prefix}`);
    admin.disconnect();
    assert.ok(!JSON.stringify(stored).includes(secretOf(key)), 'Redis holds no secret');
    assert.match(stored.hash ?? '', /^[0-9a-f]{64}$/, 'only an HMAC-SHA256');

    const first = await post(
      `${api.url}/v1/messages`,
      message('ok-rotation@example.test'),
      auth(key, { 'idempotency-key': 'across-rotation' }),
    );
    assert.equal(first.status, 202);
    const rotated = await cli('rotate', [prefix], {});
    assert.equal(rotated.code, 0, rotated.err);
    const fresh = (JSON.parse(rotated.out) as { key: string }).key;
    keysSeen.push(fresh);
    assert.equal(
      (await post(`${api.url}/v1/messages`, message('ok-cli@example.test'), auth(key))).status,
      401,
    );
    assert.equal(
      (await post(`${api.url}/v1/messages`, message('ok-cli@example.test'), auth(fresh))).status,
      202,
    );
    const retried = await post(
      `${api.url}/v1/messages`,
      message('ok-rotation@example.test'),
      auth(fresh, { 'idempotency-key': 'across-rotation' }),
    );
    assert.equal(retried.status, 200, 'a retry with the rotated key finds the first message');
    assert.equal((retried.body as { id: string }).id, (first.body as { id: string }).id);

    const freshPrefix = fresh.split('_')[1]!;
    const revoked = await cli('revoke', [freshPrefix], { pepper: '' });
    assert.equal(revoked.code, 0);
    assert.equal(
      (await post(`${api.url}/v1/messages`, message('ok-cli@example.test'), auth(fresh))).status,
      401,
    );
    assert.equal((await cli('revoke', ['zzzzzzzzzz'], {})).code, 1, 'unknown prefix');

    const graceful = await cli('create', [], { scopes: 'read' });
    const old = JSON.parse(graceful.out) as { key: string; prefix: string };
    keysSeen.push(old.key);
    const overlap = await cli('rotate', [old.prefix], { graceSeconds: '3600' });
    keysSeen.push((JSON.parse(overlap.out) as { key: string }).key);
    const stillWorks = await fetch(`${api.url}/v1/messages/01m84hek00000000000000000a`, {
      headers: auth(old.key),
    });
    assert.equal(stillWorks.status, 404, 'within the grace period the old key still works');
  });

  it('logs no API key, no Authorization header and no recipient address at info', () => {
    const logs = api.logs();
    assert.ok(logs.includes('"msg":"incoming request"'), 'requests were logged');
    for (const key of keysSeen) assert.ok(!logs.includes(secretOf(key)), 'no key secret in the logs');
    assert.doesNotMatch(logs, /Bearer |Basic [A-Za-z0-9+/=]{8}|authorization/i);
    assert.doesNotMatch(logs, /@example\.test/, 'no recipient address');
  });
});
