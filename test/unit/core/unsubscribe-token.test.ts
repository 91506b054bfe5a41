import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  ConfigError,
  MailroomError,
  UNSUBSCRIBE_MAC_BYTES,
  UnsubscribeTokenError,
  ValidationError,
  createUnsubscribeToken,
  unsubscribeHeaders,
  verifyUnsubscribeToken,
  type UnsubscribeTokenProblem,
} from '@mailroom/core';

const SECRET = 'a'.repeat(16) + '0123456789abcdef0123456789abcdef';
const OLD_SECRET = 'old-secret-0123456789abcdef0123456789';
const ISSUED = Date.UTC(2025, 2, 4, 10, 5, 6);
const FIELDS = { address: 'Ada.Lovelace@Example.org', list: 'weekly', scope: 'news.example.com' };

function token(extra: { secret?: string; issuedAt?: number } = {}): string {
  return createUnsubscribeToken({ secret: SECRET, issuedAt: ISSUED, ...FIELDS, ...extra });
}

/** Asserts that verification throws UnsubscribeTokenError with `reason` (and the coded error's shape). */
function refused(run: () => unknown, reason: UnsubscribeTokenProblem, what: string): void {
  assert.throws(
    run,
    (err: unknown) => {
      assert.ok(err instanceof UnsubscribeTokenError, `${what}: UnsubscribeTokenError, got ${String(err)}`);
      assert.ok(err instanceof MailroomError);
      assert.equal(err.code, 'ERR_UNSUBSCRIBE_TOKEN');
      assert.equal(err.reason, reason, `${what}: reason`);
      return true;
    },
    what,
  );
}

function flipBit(t: string, byte: number, bit: number): string {
  const bytes = Buffer.from(t, 'base64url');
  bytes[byte]! ^= 1 << bit;
  return bytes.toString('base64url');
}

void describe('unsubscribe tokens', () => {
  void it('round trip: address (domain lower-cased), list, scope and issuedAt to the second', () => {
    const t = createUnsubscribeToken({ secret: SECRET, ...FIELDS, issuedAt: ISSUED + 789 });
    assert.deepEqual(verifyUnsubscribeToken(t, { secrets: [SECRET] }), {
      address: 'Ada.Lovelace@example.org',
      list: 'weekly',
      scope: 'news.example.com',
      issuedAt: ISSUED,
    });
    const global = createUnsubscribeToken({
      secret: SECRET,
      address: 'b@example.net',
      list: 'l',
      scope: '*',
    });
    assert.equal(verifyUnsubscribeToken(global, { secrets: [SECRET] }).scope, '*');
  });

  void it('are URL-safe and compact, with a 128-bit MAC, and do not show the address in plain text', () => {
    const t = token();
    assert.match(t, /^[A-Za-z0-9_-]+$/);
    const bytes = Buffer.from(t, 'base64url');
    const payload = 1 + 4 + 1 + 24 + 1 + 6 + 1 + 16;
    assert.equal(bytes.length, payload + UNSUBSCRIBE_MAC_BYTES);
    assert.ok(t.length <= 100, `${t.length} characters`);
    for (const visible of ['Lovelace', 'lovelace', 'example.org', '@', 'weekly']) {
      assert.ok(!t.includes(visible), `"${visible}" is not readable in the token`);
    }
  });

  void it('signing is deterministic for the same fields and second, and differs otherwise', () => {
    assert.equal(token(), token());
    assert.notEqual(token(), token({ issuedAt: ISSUED + 1000 }));
    assert.notEqual(token(), createUnsubscribeToken({ secret: SECRET, ...FIELDS, list: 'monthly' }));
  });

  void it('any changed bit of the payload or of the MAC is a bad signature; of the version, malformed', () => {
    const t = token();
    const length = Buffer.from(t, 'base64url').length;
    let checked = 0;
    for (let byte = 0; byte < length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = flipBit(t, byte, bit);
        refused(
          () => verifyUnsubscribeToken(tampered, { secrets: [SECRET] }),
          byte === 0 ? 'malformed' : 'bad_signature',
          `byte ${byte} bit ${bit}`,
        );
        checked += 1;
      }
    }
    assert.equal(checked, length * 8);
  });

  void it('any changed character is refused (no second spelling of the same bytes is accepted)', () => {
    const t = token();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < t.length; i++) {
      const replacement = alphabet[(alphabet.indexOf(t[i]!) + 1) % 64]!;
      const changed = t.slice(0, i) + replacement + t.slice(i + 1);
      assert.throws(
        () => verifyUnsubscribeToken(changed, { secrets: [SECRET] }),
        UnsubscribeTokenError,
        `char ${i}`,
      );
    }
  });

  void it('truncated, extended, empty and garbage tokens are malformed or unsigned', () => {
    const t = token();
    refused(() => verifyUnsubscribeToken('', { secrets: [SECRET] }), 'malformed', 'empty');
    refused(
      () => verifyUnsubscribeToken('not a token!', { secrets: [SECRET] }),
      'malformed',
      'not base64url',
    );
    refused(() => verifyUnsubscribeToken('x'.repeat(2000), { secrets: [SECRET] }), 'malformed', 'too long');
    refused(() => verifyUnsubscribeToken('AQ', { secrets: [SECRET] }), 'malformed', 'too short');
    refused(() => verifyUnsubscribeToken(`${t}=`, { secrets: [SECRET] }), 'malformed', 'padding');
    assert.throws(() => verifyUnsubscribeToken(t.slice(0, -1), { secrets: [SECRET] }), UnsubscribeTokenError);
    assert.throws(() => verifyUnsubscribeToken(`${t}AA`, { secrets: [SECRET] }), UnsubscribeTokenError);
    // Correctly signed payloads whose fields do not parse are still refused as malformed.
    const sign = (payload: Buffer) =>
      Buffer.concat([
        payload,
        createHmac('sha256', SECRET)
          .update('mailroom-unsubscribe\0')
          .update(payload)
          .digest()
          .subarray(0, UNSUBSCRIBE_MAC_BYTES),
      ]).toString('base64url');
    const header = Buffer.from([1, 0x67, 0xc6, 0xd1, 0x06]);
    const overrun = Buffer.concat([header, Buffer.from([40, 0x61, 1, 0x62, 1, 0x63])]);
    refused(
      () => verifyUnsubscribeToken(sign(overrun), { secrets: [SECRET] }),
      'malformed',
      'length overrun',
    );
    const trailing = Buffer.concat([header, Buffer.from([1, 0x61, 1, 0x62, 1, 0x63, 0x64])]);
    refused(
      () => verifyUnsubscribeToken(sign(trailing), { secrets: [SECRET] }),
      'malformed',
      'trailing byte',
    );
    const wellFormed = Buffer.concat([header, Buffer.from([1, 0x61, 1, 0x62, 1, 0x63])]);
    assert.equal(
      verifyUnsubscribeToken(sign(wellFormed), { secrets: [SECRET] }).list,
      'b',
      'the signer agrees',
    );
  });

  void it('a wrong secret is a bad signature', () => {
    refused(
      () => verifyUnsubscribeToken(token(), { secrets: ['another-secret-0123456789abcdef01234567'] }),
      'bad_signature',
      'wrong secret',
    );
  });

  void it('rotation: the first secret signs, every listed secret verifies', () => {
    const old = token({ secret: OLD_SECRET });
    const fresh = token();
    const secrets = [SECRET, OLD_SECRET];
    assert.equal(verifyUnsubscribeToken(old, { secrets }).address, 'Ada.Lovelace@example.org');
    assert.equal(verifyUnsubscribeToken(fresh, { secrets }).address, 'Ada.Lovelace@example.org');
    refused(() => verifyUnsubscribeToken(old, { secrets: [SECRET] }), 'bad_signature', 'old secret retired');
  });

  void it('expiry: maxAgeMs refuses older tokens as expired, accepts younger ones', () => {
    const t = token();
    const maxAgeMs = 30 * 24 * 3600 * 1000;
    assert.equal(
      verifyUnsubscribeToken(t, { secrets: [SECRET], maxAgeMs, now: ISSUED + maxAgeMs }).issuedAt,
      ISSUED,
    );
    refused(
      () => verifyUnsubscribeToken(t, { secrets: [SECRET], maxAgeMs, now: ISSUED + maxAgeMs + 1 }),
      'expired',
      'one ms too old',
    );
    assert.ok(
      verifyUnsubscribeToken(t, { secrets: [SECRET], now: ISSUED + 10 * maxAgeMs }),
      'no limit by default',
    );
    // A forged token is refused for its signature even when it is also too old.
    refused(
      () =>
        verifyUnsubscribeToken(flipBit(t, 3, 0), { secrets: [SECRET], maxAgeMs, now: ISSUED + 2 * maxAgeMs }),
      'bad_signature',
      'forged and old',
    );
  });

  void it('bad fields are refused when creating, each named; weak secrets are configuration errors', () => {
    assert.throws(
      () => createUnsubscribeToken({ secret: 'short', ...FIELDS }),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'secret',
    );
    assert.throws(
      () =>
        createUnsubscribeToken({
          secret: SECRET,
          address: 'not-an-address',
          list: 'weekly news',
          scope: 'News',
        }),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.deepEqual(
          err.issues.map((i) => i.field),
          ['address', 'list', 'scope'],
        );
        return true;
      },
    );
    assert.throws(
      () => createUnsubscribeToken({ secret: SECRET, ...FIELDS, issuedAt: 2 ** 33 * 1000 }),
      (err: unknown) => err instanceof ValidationError && err.issues[0]?.field === 'issuedAt',
    );
    assert.throws(
      () => verifyUnsubscribeToken(token(), { secrets: [] }),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'secrets',
    );
    assert.throws(
      () => verifyUnsubscribeToken(token(), { secrets: [SECRET, 'short'] }),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'secrets[1]',
    );
  });
});

void describe('unsubscribe headers', () => {
  void it('one-click URL and mailto, in RFC 8058 form', () => {
    const t = token();
    assert.deepEqual(
      unsubscribeHeaders({
        baseUrl: 'https://news.example.com/u',
        mailto: 'unsub@news.example.com',
        token: t,
      }),
      {
        'List-Unsubscribe': `<https://news.example.com/u/${t}>, <mailto:unsub@news.example.com?subject=unsubscribe-${t}>`,
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
    );
    assert.equal(
      unsubscribeHeaders({ baseUrl: 'https://News.Example.com:8443/a/b/', token: t })['List-Unsubscribe'],
      `<https://news.example.com:8443/a/b/${t}>`,
    );
    assert.equal(
      unsubscribeHeaders({ baseUrl: 'https://news.example.com', token: t })['List-Unsubscribe'],
      `<https://news.example.com/${t}>`,
    );
  });

  void it('the token at the end of the URL verifies', () => {
    const t = token();
    const header = unsubscribeHeaders({ baseUrl: 'https://news.example.com/u', token: t })[
      'List-Unsubscribe'
    ];
    const url = new URL(header.slice(1, -1));
    const last = url.pathname.split('/').pop()!;
    assert.equal(verifyUnsubscribeToken(last, { secrets: [SECRET] }).list, 'weekly');
  });

  void it('mailto local parts are percent-encoded', () => {
    const t = token();
    const header = unsubscribeHeaders({
      baseUrl: 'https://x.example/u',
      mailto: 'un+sub=1@x.example',
      token: t,
    });
    assert.ok(
      header['List-Unsubscribe'].endsWith(`<mailto:un%2Bsub%3D1@x.example?subject=unsubscribe-${t}>`),
    );
  });

  void it('http is refused except for loopback hosts', () => {
    const t = token();
    for (const baseUrl of ['http://news.example.com/u', 'http://10.0.0.1/u', 'http://127.example.com/u']) {
      assert.throws(
        () => unsubscribeHeaders({ baseUrl, token: t }),
        (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.field === 'baseUrl'),
        baseUrl,
      );
    }
    for (const baseUrl of ['http://127.0.0.1:8080/u', 'http://localhost/u', 'http://[::1]:3000/u']) {
      assert.match(unsubscribeHeaders({ baseUrl, token: t })['List-Unsubscribe'], /^<http:\/\//, baseUrl);
    }
  });

  void it('refuses other schemes, relative URLs, credentials, queries, fragments, bad mailto and bad tokens', () => {
    const t = token();
    const cases: [string, Parameters<typeof unsubscribeHeaders>[0]][] = [
      ['baseUrl', { baseUrl: 'ftp://x.example/u', token: t }],
      ['baseUrl', { baseUrl: '/u', token: t }],
      ['baseUrl', { baseUrl: 'https://user:pw@x.example/u', token: t }],
      ['baseUrl', { baseUrl: 'https://x.example/u?list=1', token: t }],
      ['baseUrl', { baseUrl: 'https://x.example/u#top', token: t }],
      ['mailto', { baseUrl: 'https://x.example/u', mailto: 'not an address', token: t }],
    ];
    for (const [field, options] of cases) {
      assert.throws(
        () => unsubscribeHeaders(options),
        (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.field === field),
        JSON.stringify(options),
      );
    }
    assert.throws(
      () => unsubscribeHeaders({ baseUrl: 'https://x.example/u', token: '../../admin' }),
      (err: unknown) => err instanceof ValidationError && err.issues[0]?.field === 'token',
    );
  });
});
