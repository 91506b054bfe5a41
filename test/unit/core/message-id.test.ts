import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMessageId, MailroomError, messageIdHeader, newMessageId, ValidationError } from '@mailroom/core';

void describe('message ids', () => {
  void it('are 26 characters of lower-case Crockford base32', () => {
    const id = newMessageId();
    assert.match(id, /^[0-9a-hjkmnp-tv-z]{26}$/);
    assert.ok(isMessageId(id));
  });

  void it('encode the millisecond time in the first 10 characters', () => {
    assert.equal(newMessageId(0).slice(0, 10), '0000000000');
    assert.equal(newMessageId(31).slice(0, 10), '000000000z');
    assert.equal(newMessageId(32).slice(0, 10), '0000000010');
    assert.equal(newMessageId(2 ** 50 - 1).slice(0, 10), 'zzzzzzzzzz');
    assert.equal(newMessageId(1_700_000_000_123).slice(0, 10), newMessageId(1_700_000_000_123).slice(0, 10));
  });

  void it('sort by time as plain strings', () => {
    const times = [0, 1, 31, 32, 1023, 1024, 1_700_000_000_000, 1_700_000_000_001, 2 ** 41, 2 ** 50 - 1];
    const ids = times.map((t) => newMessageId(t));
    assert.deepEqual([...ids].sort(), ids);
    // Also across a random spread of times, ids generated out of order sort back into time order.
    const spread = Array.from({ length: 1000 }, (_, i) => 1_600_000_000_000 + i * 7919);
    const shuffled = spread.map((t) => ({ t, id: newMessageId(t) })).sort(() => Math.random() - 0.5);
    const byId = [...shuffled].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((x) => x.t);
    assert.deepEqual(byId, spread);
  });

  void it('are unique over 100k ids generated in the same millisecond', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) seen.add(newMessageId(1_700_000_000_000));
    assert.equal(seen.size, 100_000);
  });

  void it('use all of the random characters', () => {
    // 80 random bits: over 2000 ids every position of the random part takes many values.
    const ids = Array.from({ length: 2000 }, () => newMessageId(0));
    for (let position = 10; position < 26; position++) {
      const values = new Set(ids.map((id) => id[position]));
      assert.ok(values.size >= 28, `position ${position} took ${values.size} values`);
    }
  });

  void it('refuse times outside [0, 2^50)', () => {
    for (const bad of [-1, 1.5, 2 ** 50, Number.NaN]) {
      assert.throws(
        () => newMessageId(bad),
        (err: unknown) => err instanceof MailroomError && err.code === 'ERR_INTERNAL',
      );
    }
  });

  void it('isMessageId rejects other strings', () => {
    for (const bad of [
      '',
      'x',
      newMessageId().toUpperCase(),
      `${newMessageId()}0`,
      'i'.repeat(26),
      'u'.repeat(26),
    ]) {
      assert.equal(isMessageId(bad), false, bad);
    }
  });

  void it('messageIdHeader writes <id@domain> with a validated, lower-case punycode domain', () => {
    const id = newMessageId(1_700_000_000_000);
    assert.equal(messageIdHeader(id, 'Mail.Example.COM'), `<${id}@mail.example.com>`);
    assert.equal(messageIdHeader(id, 'bücher.example'), `<${id}@xn--bcher-kva.example>`);
    assert.throws(() => messageIdHeader(id, 'example.com>\r\nBcc: x@y.example'), ValidationError);
    assert.throws(() => messageIdHeader('not-an-id', 'example.com'), ValidationError);
  });
});
