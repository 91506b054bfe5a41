import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SuppressionEntry } from '@mailroom/queue';
import { coalescedSuppressionCheck } from '@mailroom/worker';

describe('coalesced pre-send suppression check', () => {
  it('checks everything asked in one turn with one call, and answers each caller', async () => {
    const calls: { scope: string; address: string }[][] = [];
    const check = coalescedSuppressionCheck({
      checkEach: (items) => {
        calls.push([...items]);
        return Promise.resolve(
          items.map((i): SuppressionEntry | undefined =>
            i.address.startsWith('gone')
              ? { address: i.address, scope: i.scope, reason: 'unsubscribe', at: 1 }
              : undefined,
          ),
        );
      },
    });
    const answers = await Promise.all([
      check('a.test', 'ok1@x.test'),
      check('a.test', 'gone@x.test'),
      check('b.test', 'ok2@x.test'),
    ]);
    assert.equal(calls.length, 1, 'one call for the three checks');
    assert.equal(calls[0]!.length, 3);
    assert.deepEqual(
      answers.map((a) => a?.reason),
      [undefined, 'unsubscribe', undefined],
    );
    await check('a.test', 'later@x.test');
    assert.equal(calls.length, 2, 'a later turn makes its own call');
  });

  it('splits above the batch size and hands a failure to every caller of that call', async () => {
    let n = 0;
    const check = coalescedSuppressionCheck(
      {
        checkEach: (items) => {
          n += 1;
          return n === 1
            ? Promise.reject(new Error('redis down'))
            : Promise.resolve(items.map(() => undefined));
        },
      },
      2,
    );
    const results = await Promise.allSettled([
      check('a.test', 'x@y.test'),
      check('a.test', 'z@y.test'),
      check('a.test', 'w@y.test'),
    ]);
    assert.equal(n, 2, 'three checks with a batch size of two: two calls');
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'fulfilled'],
    );
  });
});
