import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createUnsubscribeToken } from '@mailroom/core';
import { SuppressionStore } from '@mailroom/queue';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';
import { message } from '../fixtures.js';
import { SENDER_DOMAIN, auth, post, startTestApi, type ErrorBody, type TestApi } from './api-fixtures.js';

const SECRET = 'unsubscribe-secret-0123456789abcdef0123456789';
const OLD_SECRET = 'an-older-unsubscribe-secret-0123456789abcdef';

describe('HTTP API: suppression list and one-click unsubscribe', () => {
  let redis: RedisServer;
  let api: TestApi;
  let store: SuppressionStore;
  let conn: ReturnType<RedisServer['client']>;
  let sendKey: string;
  let adminKey: string;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    api = await startTestApi(redis, { MAILROOM_UNSUBSCRIBE_SECRETS: `${SECRET},${OLD_SECRET}` });
    sendKey = await api.key(['send', 'read']);
    adminKey = await api.key(['admin'], ['*']);
    conn = redis.client();
    store = new SuppressionStore(conn, '{mailroom}');
  });

  after(async () => {
    await api.close();
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('adds, lists and looks up entries in the key own sender scopes; * and removal need admin', async () => {
    const add = await post(
      `${api.url}/v1/suppressions`,
      {
        scope: SENDER_DOMAIN,
        entries: [{ address: 'Gone@Example.test', reason: 'complaint' }, { address: 'quiet@example.test' }],
      },
      auth(sendKey),
    );
    assert.equal(add.status, 200, JSON.stringify(add.body));
    assert.deepEqual(add.body, { added: 2 });
    const global = await post(
      `${api.url}/v1/suppressions`,
      { scope: '*', entries: [{ address: 'x@example.test' }] },
      auth(sendKey),
    );
    assert.equal(global.status, 403);
    assert.equal((global.body as ErrorBody).error.fields?.[0]?.field, 'scope');
    const foreign = await fetch(`${api.url}/v1/suppressions?scope=other.example`, { headers: auth(sendKey) });
    assert.equal(foreign.status, 403, 'a scope outside the key domains');
    const bad = await post(
      `${api.url}/v1/suppressions`,
      { scope: SENDER_DOMAIN, entries: [{ address: 'a@example.test, b@example.test' }] },
      auth(sendKey),
    );
    assert.equal(bad.status, 422);

    const list = (await (
      await fetch(`${api.url}/v1/suppressions?scope=${SENDER_DOMAIN}`, { headers: auth(sendKey) })
    ).json()) as {
      entries: { address: string; reason: string; source?: string }[];
    };
    assert.deepEqual(list.entries.map((e) => e.address).sort(), ['gone@example.test', 'quiet@example.test']);
    assert.ok(
      list.entries.every((e) => e.source?.startsWith('api:')),
      'the source names the key',
    );
    const one = await fetch(`${api.url}/v1/suppressions?scope=${SENDER_DOMAIN}&address=gone@example.test`, {
      headers: auth(sendKey),
    });
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { entries: { reason: string }[] }).entries[0]?.reason, 'complaint');

    const suppressed = await post(`${api.url}/v1/messages`, message('gone@example.test'), auth(sendKey));
    assert.equal(suppressed.status, 200, 'recorded, not queued');
    assert.deepEqual(
      [
        (suppressed.body as { state: string }).state,
        (suppressed.body as { suppression: { reason: string } }).suppression.reason,
      ],
      ['suppressed', 'complaint'],
    );

    const removeUrl = `${api.url}/v1/suppressions?scope=${SENDER_DOMAIN}&address=quiet@example.test`;
    assert.equal((await fetch(removeUrl, { method: 'DELETE', headers: auth(sendKey) })).status, 403);
    const removed = await fetch(removeUrl, { method: 'DELETE', headers: auth(adminKey) });
    assert.equal(removed.status, 200);
    assert.deepEqual(await removed.json(), { removed: 1 });
    assert.equal(await store.get(SENDER_DOMAIN, 'quiet@example.test'), undefined);
  });

  it('one-click unsubscribe: GET shows a form and changes nothing; the RFC 8058 POST suppresses', async () => {
    const address = 'reader@example.test';
    const token = createUnsubscribeToken({ secret: SECRET, address, list: 'weekly', scope: SENDER_DOMAIN });
    const page = await fetch(`${api.url}/u/${token}`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<form method="post"/);
    assert.match(html, /name="List-Unsubscribe" value="One-Click"/);
    assert.equal(
      await store.get(SENDER_DOMAIN, address),
      undefined,
      'a GET (a link scanner) unsubscribes no one',
    );

    const notOneClick = await fetch(`${api.url}/u/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'something=else',
    });
    assert.equal(notOneClick.status, 400);
    assert.equal(await store.get(SENDER_DOMAIN, address), undefined);

    const click = await fetch(`${api.url}/u/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(click.status, 200, 'no API key needed');
    const entry = await store.get(SENDER_DOMAIN, address);
    assert.deepEqual([entry?.reason, entry?.source], ['unsubscribe', 'list:weekly']);

    const multipart = createUnsubscribeToken({
      secret: OLD_SECRET,
      address: 'm@example.test',
      list: 'weekly',
      scope: '*',
    });
    const boundary = 'x-boundary';
    const viaMultipart = await fetch(`${api.url}/u/${multipart}`, {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`,
    });
    assert.equal(viaMultipart.status, 200, 'multipart form data, signed with an older secret');
    assert.equal((await store.get('*', 'm@example.test'))?.reason, 'unsubscribe');

    const forged = createUnsubscribeToken({
      secret: 'someone-elses-secret-0123456789abcdef0123',
      address: 'victim@example.test',
      list: 'weekly',
      scope: '*',
    });
    for (const bad of [forged, `${token.slice(0, -2)}xx`, 'not-a-token']) {
      const r = await fetch(`${api.url}/u/${bad}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      assert.equal(r.status, 400, `refused: ${bad.slice(0, 12)}`);
    }
    assert.equal(await store.get('*', 'victim@example.test'), undefined);
    assert.ok(!api.logs().includes(token), 'the token is not logged');
    assert.doesNotMatch(api.logs(), /reader@example\.test/, 'nor the address');
  });
});
