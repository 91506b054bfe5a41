import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, newMessageId, ValidationError } from '@mailroom/core';
import {
  decodeVerp,
  encodeVerp,
  MAX_VERP_PREFIX_CHARS,
  MIN_VERP_SECRET_BYTES,
  VERP_MAC_CHARS,
  type VerpOptions,
} from '@mailroom/feedback';

const OPTIONS: VerpOptions = {
  localPrefix: 'bounces',
  domain: 'bounce.example.com',
  secret: 'a-test-secret-of-32-characters!!',
};

/** `address` with the character at `index` of its MAC replaced by another of the alphabet. */
function withMacCharChanged(address: string, index: number): string {
  const at = address.lastIndexOf('@');
  const macStart = at - VERP_MAC_CHARS;
  const old = address.charAt(macStart + index);
  const replacement = old === '0' ? '1' : '0';
  return address.slice(0, macStart + index) + replacement + address.slice(macStart + index + 1);
}

void describe('VERP return paths', () => {
  void it('round-trip: the address names the message id, signed, all lower case', () => {
    for (let i = 0; i < 50; i++) {
      const id = newMessageId(1_741_080_000_000 + i * 997);
      const address = encodeVerp(id, OPTIONS);
      assert.match(
        address,
        new RegExp(`^bounces\\+${id}\\.[0-9a-hjkmnp-tv-z]{${VERP_MAC_CHARS}}@bounce\\.example\\.com$`),
      );
      assert.equal(decodeVerp(address, OPTIONS), id);
    }
  });

  void it('is deterministic for one id and options, and differs between ids', () => {
    const id = newMessageId();
    assert.equal(encodeVerp(id, OPTIONS), encodeVerp(id, OPTIONS));
    assert.notEqual(encodeVerp(id, OPTIONS), encodeVerp(newMessageId(), OPTIONS));
  });

  void it('rejects every single-character change of the MAC', () => {
    const address = encodeVerp(newMessageId(), OPTIONS);
    for (let index = 0; index < VERP_MAC_CHARS; index++) {
      const tampered = withMacCharChanged(address, index);
      assert.notEqual(tampered, address);
      assert.equal(decodeVerp(tampered, OPTIONS), undefined, tampered);
    }
  });

  void it('rejects a MAC moved to another message id', () => {
    const first = encodeVerp(newMessageId(1_741_080_000_000), OPTIONS);
    const other = newMessageId(1_741_080_000_001);
    const mac = first.slice(first.lastIndexOf('.', first.indexOf('@')) + 1, first.indexOf('@'));
    const forged = `bounces+${other}.${mac}@bounce.example.com`;
    assert.equal(decodeVerp(forged, OPTIONS), undefined);
  });

  void it('rejects addresses signed with another secret', () => {
    const id = newMessageId();
    const other = encodeVerp(id, { ...OPTIONS, secret: 'another-secret-of-32-characters!' });
    assert.equal(decodeVerp(other, OPTIONS), undefined);
    assert.equal(
      decodeVerp(encodeVerp(id, OPTIONS), { ...OPTIONS, secret: 'another-secret-of-32-characters!' }),
      undefined,
    );
  });

  void it('is bound to its prefix and domain', () => {
    const id = newMessageId();
    const address = encodeVerp(id, OPTIONS);
    assert.equal(
      decodeVerp(address.replace('@bounce.example.com', '@other.example.com'), OPTIONS),
      undefined,
    );
    assert.equal(decodeVerp(address.replace(/^bounces\+/, 'returns+'), OPTIONS), undefined);
    // The same MAC does not verify under options with another domain or prefix either.
    assert.equal(decodeVerp(address, { ...OPTIONS, domain: 'other.example.com' }), undefined);
    assert.equal(decodeVerp(address, { ...OPTIONS, localPrefix: 'returns' }), undefined);
  });

  void it('accepts the address in any letter case, since mailbox providers change the case of local parts', () => {
    const id = newMessageId();
    const address = encodeVerp(id, OPTIONS);
    assert.equal(decodeVerp(address.toUpperCase(), OPTIONS), id);
    const mixed = [...address].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join('');
    assert.notEqual(mixed, address);
    assert.equal(decodeVerp(mixed, OPTIONS), id);
    assert.equal(decodeVerp(`<${address}>`, OPTIONS), id);
    assert.equal(decodeVerp(`  <${address.toUpperCase()}>  `, OPTIONS), id);
    // Options are compared case-insensitively too.
    assert.equal(
      decodeVerp(address, { ...OPTIONS, localPrefix: 'BOUNCES', domain: 'Bounce.Example.COM' }),
      id,
    );
    assert.equal(
      encodeVerp(id, { ...OPTIONS, localPrefix: 'Bounces', domain: 'BOUNCE.example.com' }),
      address,
    );
  });

  void it('accepts a Buffer secret with the same bytes as a string secret', () => {
    const id = newMessageId();
    const address = encodeVerp(id, OPTIONS);
    assert.equal(
      decodeVerp(address, { ...OPTIONS, secret: Buffer.from(OPTIONS.secret as string, 'utf8') }),
      id,
    );
  });

  void it('keeps the local part within 64 octets: the longest prefix makes exactly 64', () => {
    assert.equal(MAX_VERP_PREFIX_CHARS, 20);
    const id = newMessageId();
    const prefix = 'b'.repeat(MAX_VERP_PREFIX_CHARS);
    const address = encodeVerp(id, { ...OPTIONS, localPrefix: prefix });
    assert.equal(address.indexOf('@'), 64);
    assert.equal(decodeVerp(address, { ...OPTIONS, localPrefix: prefix }), id);
    assert.throws(
      () => encodeVerp(id, { ...OPTIONS, localPrefix: `${prefix}b` }),
      (err: unknown) =>
        err instanceof ConfigError && err.issues.some((issue) => issue.field === 'verp.localPrefix'),
    );
  });

  void it('never decodes a local part longer than 64 octets', () => {
    const id = newMessageId();
    const address = encodeVerp(id, OPTIONS);
    const long = `${'x'.repeat(64)}.${address}`;
    assert.ok(long.indexOf('@') > 64);
    assert.equal(decodeVerp(long, OPTIONS), undefined);
  });

  void it('refuses unusable options with a ConfigError naming each field', () => {
    const id = newMessageId();
    const bad: VerpOptions = { localPrefix: 'bounces+x', domain: 'not a domain', secret: 'short' };
    assert.throws(
      () => encodeVerp(id, bad),
      (err: unknown) =>
        err instanceof ConfigError &&
        ['verp.localPrefix', 'verp.domain', 'verp.secret'].every((field) =>
          err.issues.some((issue) => issue.field === field),
        ),
    );
    assert.throws(() => decodeVerp('bounces+x@bounce.example.com', bad), ConfigError);
    for (const localPrefix of ['', '.bounces', 'bounces.', 'bou..nces', 'bou nces', 'bounces@x']) {
      assert.throws(() => encodeVerp(id, { ...OPTIONS, localPrefix }), ConfigError, localPrefix);
    }
    const shortest = 'k'.repeat(MIN_VERP_SECRET_BYTES);
    assert.ok(encodeVerp(id, { ...OPTIONS, secret: shortest }).startsWith('bounces+'));
    assert.throws(() => encodeVerp(id, { ...OPTIONS, secret: shortest.slice(1) }), ConfigError);
  });

  void it('refuses to encode what is not a Mailroom message id', () => {
    for (const bad of ['', 'x', newMessageId().toUpperCase(), `${newMessageId()}0`, '../../etc/passwd']) {
      assert.throws(() => encodeVerp(bad, OPTIONS), ValidationError, bad);
    }
  });

  void it('returns undefined, never throws, for addresses that are not ours', () => {
    const id = newMessageId();
    const mac = encodeVerp(id, OPTIONS).split('.')[1]?.split('@')[0] ?? '';
    for (const address of [
      '',
      '@',
      'bounces@bounce.example.com',
      `bounces+${id}@bounce.example.com`,
      `bounces+${id}.${mac}`,
      `bounces+${id}.${mac}@`,
      `bounces+${id}.${mac}@[192.0.2.1]`,
      `bounces+${id.toUpperCase().replace('0', 'O')}.${mac}@bounce.example.com`,
      `bounces+${id}.${mac}x@bounce.example.com`,
      `<bounces+${id}.${mac}@bounce.example.com`,
      'x'.repeat(10_000),
      `${'a@'.repeat(1000)}bounce.example.com`,
      12 as unknown as string,
    ]) {
      assert.equal(decodeVerp(address, OPTIONS), undefined, String(address).slice(0, 80));
    }
  });
});
