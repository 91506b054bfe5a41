import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ValidationError } from '@mailroom/core';
import {
  GLOBAL_SUPPRESSION_SCOPE,
  SuppressionStore,
  suppressionScopeOf,
  type SuppressionEntry,
  type SuppressionInput,
  type SuppressionReason,
} from '@mailroom/queue';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';

const SCOPE = 'news.example.com';
let prefixes = 0;

/** A fresh store under its own prefix (its own hash tag), so tests do not see each other's keys. */
function freshStore(conn: Redis): { store: SuppressionStore; prefix: string } {
  const prefix = `{supp-test-${++prefixes}}`;
  return { store: new SuppressionStore(conn, prefix), prefix };
}

function addresses(n: number, from = 0, domain = 'example.test'): string[] {
  return Array.from({ length: n }, (_, i) => `reader.${from + i}@${domain}`);
}

async function all(store: SuppressionStore, scope: string): Promise<SuppressionEntry[]> {
  const out: SuppressionEntry[] = [];
  for await (const entry of store.export(scope)) out.push(entry);
  return out;
}

function expectIssues(fields: readonly string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof ValidationError, `ValidationError, got ${String(err)}`);
    assert.deepEqual(
      err.issues.map((i) => i.field),
      fields,
    );
    return true;
  };
}

describe('suppression store (real Redis)', () => {
  let redis: RedisServer;
  let conn: Redis;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    conn = redis.client();
  });

  after(async () => {
    conn.disconnect();
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  it('add, check, get, remove and count, exactly', async () => {
    const { store } = freshStore(conn);
    const list = addresses(1500);
    const added = await store.add(
      SCOPE,
      list.map((address, i) => ({ address, reason: i % 2 === 0 ? 'unsubscribe' : 'hard_bounce' }) as const),
    );
    assert.equal(added, 1500);
    assert.equal(await store.count(SCOPE), 1500);
    assert.equal(await store.add(SCOPE, [{ address: list[0]!, reason: 'unsubscribe' }]), 0, 'already listed');
    assert.equal(await store.count(SCOPE), 1500);

    const probe = [...list.slice(0, 700), ...addresses(500, 5000)];
    const found = await store.check(SCOPE, probe);
    assert.equal(found.size, 700);
    for (const address of list.slice(0, 700)) assert.ok(found.has(address), address);
    assert.equal(found.get(list[1]!)?.reason, 'hard_bounce');
    assert.equal(found.get(list[2]!)?.reason, 'unsubscribe');
    assert.equal(found.get(list[2]!)?.scope, SCOPE);

    const entry = await store.get(SCOPE, list[3]!);
    assert.ok(entry);
    assert.equal(entry.address, list[3]);
    assert.ok(Math.abs(entry.at - Date.now()) < 60_000, 'at defaults to now');
    assert.equal(await store.get(SCOPE, 'nobody@example.test'), undefined);

    const removed = await store.remove(SCOPE, [...list.slice(0, 100), list[0]!, 'nobody@example.test']);
    assert.equal(removed, 100);
    assert.equal(await store.count(SCOPE), 1400);
    assert.equal((await store.check(SCOPE, list.slice(0, 200))).size, 100);
    assert.equal((await all(store, SCOPE)).length, 1400, 'count agrees with what is listed');
  });

  it('normalises addresses: the whole address case-insensitively, IDN domains as punycode, nothing else folded', async () => {
    const { store } = freshStore(conn);
    await store.add(SCOPE, [
      { address: 'Ada.Lovelace@Example.ORG', reason: 'unsubscribe' },
      { address: 'Grace <grace@bücher.example>', reason: 'complaint' },
      { address: '  alan@example.org  ', reason: 'manual' },
    ]);
    assert.equal(await store.count(SCOPE), 3);
    const found = await store.check(SCOPE, [
      'ada.lovelace@example.org',
      'ADA.LOVELACE@EXAMPLE.ORG',
      'grace@xn--bcher-kva.example',
      'GRACE@BÜCHER.example',
      'alan@example.org',
      'adalovelace@example.org',
      'ada.lovelace+news@example.org',
    ]);
    assert.deepEqual(
      [...found.keys()],
      [
        'ada.lovelace@example.org',
        'ADA.LOVELACE@EXAMPLE.ORG',
        'grace@xn--bcher-kva.example',
        'GRACE@BÜCHER.example',
        'alan@example.org',
      ],
      'keyed by the addresses as passed; dots and +tags are other mailboxes',
    );
    assert.equal(
      found.get('ADA.LOVELACE@EXAMPLE.ORG')?.address,
      'ada.lovelace@example.org',
      'canonical form',
    );
    assert.deepEqual((await all(store, SCOPE)).map((e) => e.address).sort(), [
      'ada.lovelace@example.org',
      'alan@example.org',
      'grace@xn--bcher-kva.example',
    ]);
    assert.equal(await store.remove(SCOPE, ['Ada.Lovelace@EXAMPLE.org']), 1, 'removal normalises too');
    assert.equal(suppressionScopeOf('News@News.Example.COM'), 'news.example.com');
  });

  it('a stronger reason replaces a weaker one, the first time stays; a weaker one changes nothing', async () => {
    const { store } = freshStore(conn);
    const first = Date.UTC(2024, 0, 1);
    await store.add(SCOPE, [
      { address: 'a@example.test', reason: 'manual', at: first, source: 'ops' },
      { address: 'b@example.test', reason: 'complaint', at: first, source: 'arf' },
      { address: 'c@example.test', reason: 'hard_bounce', at: first },
    ]);
    const later = Date.UTC(2025, 5, 1);
    assert.equal(
      await store.add(SCOPE, [
        { address: 'a@example.test', reason: 'unsubscribe', at: later, source: 'list:weekly' },
        { address: 'b@example.test', reason: 'hard_bounce', at: later, source: 'dsn' },
        { address: 'c@example.test', reason: 'complaint', at: later },
      ]),
      0,
    );
    assert.deepEqual(await store.get(SCOPE, 'a@example.test'), {
      address: 'a@example.test',
      scope: SCOPE,
      reason: 'unsubscribe',
      at: first,
      source: 'list:weekly',
    });
    assert.deepEqual(await store.get(SCOPE, 'b@example.test'), {
      address: 'b@example.test',
      scope: SCOPE,
      reason: 'complaint',
      at: first,
      source: 'arf',
    });
    assert.deepEqual(await store.get(SCOPE, 'c@example.test'), {
      address: 'c@example.test',
      scope: SCOPE,
      reason: 'complaint',
      at: first,
    });
    assert.equal(await store.count(SCOPE), 3);
  });

  it('scopes: a sender scope stops only its own mail, "*" stops everyone\'s, the stronger reason wins', async () => {
    const { store } = freshStore(conn);
    await store.add('brand-a.example', [{ address: 'x@example.test', reason: 'unsubscribe' }]);
    await store.add(GLOBAL_SUPPRESSION_SCOPE, [
      { address: 'y@example.test', reason: 'manual', source: 'legal request' },
      { address: 'x@example.test', reason: 'manual' },
    ]);
    await store.add('brand-b.example', [{ address: 'y@example.test', reason: 'complaint' }]);

    const a = await store.check('brand-a.example', ['x@example.test', 'y@example.test', 'z@example.test']);
    assert.equal(a.get('x@example.test')?.scope, 'brand-a.example', 'unsubscribe outranks manual');
    assert.equal(a.get('y@example.test')?.scope, '*');
    assert.equal(a.get('y@example.test')?.source, 'legal request');
    assert.equal(a.has('z@example.test'), false);

    const b = await store.check('brand-b.example', ['x@example.test', 'y@example.test']);
    assert.equal(b.get('x@example.test')?.scope, '*');
    assert.equal(b.get('y@example.test')?.reason, 'complaint');
    assert.equal(b.get('y@example.test')?.scope, 'brand-b.example');

    const c = await store.check('brand-c.example', ['x@example.test', 'q@example.test']);
    assert.deepEqual([...c.keys()], ['x@example.test']);

    const each = await store.checkEach([
      { scope: 'brand-a.example', address: 'x@example.test' },
      { scope: 'brand-c.example', address: 'q@example.test' },
      { scope: 'brand-b.example', address: 'y@example.test' },
      { scope: '*', address: 'y@example.test' },
    ]);
    assert.deepEqual(
      each.map((e) => e && `${e.scope}:${e.reason}`),
      ['brand-a.example:unsubscribe', undefined, 'brand-b.example:complaint', '*:manual'],
    );

    assert.equal(await store.get('brand-c.example', 'x@example.test'), undefined, 'get reads one scope');
    assert.equal(await store.remove('brand-a.example', ['y@example.test']), 0, 'remove touches one scope');
    assert.equal(await store.count('*'), 2);
    assert.equal(await store.count('brand-a.example'), 1);
    assert.equal(await store.count('brand-c.example'), 0);
  });

  it('bad input names each field and writes nothing', async () => {
    const { store, prefix } = freshStore(conn);
    const before = await conn.keys(`${prefix}*`);
    const bad: SuppressionInput[] = [
      { address: 'ok@example.test', reason: 'unsubscribe' },
      { address: 'not-an-address', reason: 'unsubscribe' },
      { address: 'ok2@example.test', reason: 'spam' as SuppressionReason },
      { address: 'ok3@example.test', reason: 'manual', source: 'line\nbreak' },
      { address: 'ok4@example.test', reason: 'manual', at: -5 },
      { address: 'a@b@example.test', reason: 'manual', source: 'x'.repeat(129) },
    ];
    await assert.rejects(
      store.add(SCOPE, bad),
      expectIssues([
        'entries[1].address',
        'entries[2].reason',
        'entries[3].source',
        'entries[4].at',
        'entries[5].address',
        'entries[5].source',
      ]),
    );
    await assert.rejects(
      store.add('News.Example.com', [{ address: 'ok@example.test', reason: 'manual' }]),
      expectIssues(['scope']),
    );
    await assert.rejects(store.check(SCOPE, ['ok@example.test', 'bad']), expectIssues(['addresses[1]']));
    await assert.rejects(store.remove(SCOPE, ['bad', 'ok@example.test']), expectIssues(['addresses[0]']));
    await assert.rejects(
      store.checkEach([{ scope: 'bad scope', address: 'x' }]),
      expectIssues(['[0].scope', '[0].address']),
    );
    await assert.rejects(store.list(SCOPE, { count: 0 }), expectIssues(['count']));
    await assert.rejects(store.list(SCOPE, { cursor: '%%%' }), expectIssues(['cursor']));
    assert.deepEqual(await conn.keys(`${prefix}*`), before, 'nothing was written');
    assert.equal(await store.count(SCOPE), 0);
  });

  it('lists in pages: each entry exactly once, also while the list grows and shrinks; buckets stay compact', async () => {
    const { store, prefix } = freshStore(conn);
    const stable = addresses(3000);
    for (let i = 0; i < stable.length; i += 1000) {
      await store.add(
        SCOPE,
        stable.slice(i, i + 1000).map((address) => ({ address, reason: 'unsubscribe' }) as const),
      );
    }
    const seen = new Map<string, number>();
    let cursor: string | undefined;
    let pages = 0;
    let churn = 0;
    do {
      const page = await store.list(SCOPE, { count: 250, ...(cursor === undefined ? {} : { cursor }) });
      assert.ok(page.entries.length <= 250);
      for (const e of page.entries) seen.set(e.address, (seen.get(e.address) ?? 0) + 1);
      cursor = page.cursor;
      pages += 1;
      // Between pages: 400 new addresses (splitting buckets) and 50 removed from the churn set.
      const fresh = addresses(400, 100_000 + churn * 400);
      await store.add(
        SCOPE,
        fresh.map((address) => ({ address, reason: 'manual' }) as const),
      );
      if (churn > 0) await store.remove(SCOPE, addresses(50, 100_000 + (churn - 1) * 400));
      churn += 1;
    } while (cursor !== undefined && pages < 200);
    assert.equal(cursor, undefined, 'the iteration ended');
    for (const address of stable) assert.equal(seen.get(address), 1, `${address} listed exactly once`);
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      'no entry listed twice',
    );

    const layout = await conn.hgetall(`${prefix}:supp:${SCOPE}`);
    assert.equal(Number(layout.n), await store.count(SCOPE));
    assert.equal((await all(store, SCOPE)).length, Number(layout.n));
    const buckets = await conn.keys(`${prefix}:supp:${SCOPE}:*`);
    assert.ok(buckets.length > 50, `the list is split into buckets (${buckets.length})`);
    const encodings = await Promise.all(buckets.map((key) => conn.object('ENCODING', key)));
    assert.ok(
      encodings.every((e) => e === 'listpack' || e === 'ziplist'),
      `every bucket is a listpack: ${[...new Set(encodings)].join(', ')}`,
    );
  });

  it('pages hold `count` entries until the last, in the same order every time', async () => {
    const { store } = freshStore(conn);
    await store.add(
      SCOPE,
      addresses(1000).map((address) => ({ address, reason: 'manual' }) as const),
    );
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list(SCOPE, { count: 300, ...(cursor === undefined ? {} : { cursor }) });
      pages.push(page.entries.map((e) => e.address));
      cursor = page.cursor;
    } while (cursor !== undefined && pages.length < 10);
    assert.deepEqual(
      pages.map((p) => p.length),
      [300, 300, 300, 100],
    );
    assert.deepEqual(
      (await all(store, SCOPE)).map((e) => e.address),
      pages.flat(),
      'export walks the same order',
    );
    assert.deepEqual(await store.list('empty.example', {}), { entries: [] });
  });

  it('import and export round trip: 3,500 rows streamed, with reasons, sources and times kept', async () => {
    const { store, prefix } = freshStore(conn);
    const reasons: SuppressionReason[] = ['manual', 'hard_bounce', 'unsubscribe', 'complaint'];
    function* rows() {
      for (let i = 0; i < 3500; i++) {
        if (i % 5 === 0) yield `Row.${i}@Example.test`;
        else {
          yield {
            address: `row.${i}@example.test`,
            reason: reasons[i % 4],
            source: i % 3 === 0 ? `file:${i}` : undefined,
            at:
              i % 2 === 0
                ? Date.UTC(2024, 0, 1) + i
                : new Date(Date.UTC(2023, 5, 1) + i * 1000).toISOString(),
          };
        }
      }
    }
    const progress: number[] = [];
    const result = await store.import(SCOPE, rows(), {
      reason: 'unsubscribe',
      source: 'old-esp',
      onProgress: (p) => progress.push(p.added),
    });
    assert.deepEqual(result, { read: 3500, added: 3500, upgraded: 0, refused: 0, refusals: [] });
    assert.equal(progress.at(-1), 3500);
    assert.equal(await store.count(SCOPE), 3500);
    assert.deepEqual(await conn.keys(`${prefix}:supp:${SCOPE}:import:*`), [], 'the staging list is gone');

    const exported = await all(store, SCOPE);
    assert.equal(exported.length, 3500);
    const byAddress = new Map(exported.map((e) => [e.address, e]));
    assert.deepEqual(byAddress.get('row.0@example.test'), {
      address: 'row.0@example.test',
      scope: SCOPE,
      reason: 'unsubscribe',
      at: byAddress.get('row.0@example.test')!.at,
      source: 'old-esp',
    });
    assert.deepEqual(byAddress.get('row.3@example.test'), {
      address: 'row.3@example.test',
      scope: SCOPE,
      reason: 'complaint',
      at: Date.UTC(2023, 5, 1) + 3000,
      source: 'file:3',
    });
    assert.deepEqual(byAddress.get('row.2@example.test'), {
      address: 'row.2@example.test',
      scope: SCOPE,
      reason: 'unsubscribe',
      at: Date.UTC(2024, 0, 1) + 2,
      source: 'old-esp',
    });

    // The export imports into another scope as the same list.
    const again = await store.import('copy.example', exported, { reason: 'manual' });
    assert.equal(again.added, 3500);
    const copy = await all(store, 'copy.example');
    assert.deepEqual(
      copy.map(({ scope: _s, ...rest }) => rest),
      exported.map(({ scope: _s, ...rest }) => rest),
    );
  });

  it('an import with invalid rows names them and adds nothing, or with skipInvalid adds the rest', async () => {
    const { store, prefix } = freshStore(conn);
    await store.add(SCOPE, [{ address: 'kept@example.test', reason: 'manual' }]);
    const rows = async function* () {
      for (let i = 0; i < 2500; i++) {
        if (i === 1200) yield 'not an address';
        else if (i === 2400) yield { address: 'r@example.test', reason: 'bounced' };
        else if (i === 2401) yield { parseError: 'CSV: Invalid Closing Quote' };
        else yield `ok.${i}@example.test`;
        await Promise.resolve();
      }
    };
    await assert.rejects(
      store.import(SCOPE, rows(), { reason: 'unsubscribe' }),
      expectIssues(['row 1201.address', 'row 2401.reason', 'row 2402.(row)']),
    );
    assert.equal(await store.count(SCOPE), 1, 'nothing was added');
    assert.equal((await store.check(SCOPE, ['ok.1@example.test'])).size, 0);
    assert.deepEqual(await conn.keys(`${prefix}:supp:${SCOPE}:import:*`), [], 'the staging list is gone');

    const skipped = await store.import(SCOPE, rows(), { reason: 'unsubscribe', skipInvalid: true });
    assert.equal(skipped.read, 2500);
    assert.equal(skipped.added, 2497);
    assert.equal(skipped.refused, 3);
    assert.deepEqual(
      skipped.refusals.map((r) => `${r.row}:${r.field}`),
      ['1201:address', '2401:reason', '2402:(row)'],
    );
    assert.equal(await store.count(SCOPE), 2498);
    await assert.rejects(
      store.import(SCOPE, [], { reason: 'nope' as SuppressionReason }),
      expectIssues(['reason']),
    );
  });
});
