// DKIM configuration: keys are parsed once, and every refusal is a ConfigError naming the field.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, type FieldIssue } from '@mailroom/core';
import { createDkimSigner, DkimSigner, loadDkimKeys } from '@mailroom/mime';

const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const RSA_PKCS8 = rsa2048.export({ type: 'pkcs8', format: 'pem' });
const RSA_PKCS1 = rsa2048.export({ type: 'pkcs1', format: 'pem' });
const RSA_1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
});
const RSA_512 = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
});
const ed = generateKeyPairSync('ed25519');
const ED_PKCS8 = ed.privateKey.export({ type: 'pkcs8', format: 'pem' });
const ED_SEED = ed.privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(16).toString('base64');
const EC_KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
});
const ED_ENCRYPTED = ed.privateKey.export({
  type: 'pkcs8',
  format: 'pem',
  cipher: 'aes-256-cbc',
  passphrase: 'secret',
});
const ED_PUBLIC = ed.publicKey.export({ type: 'spki', format: 'pem' });

const dir = mkdtempSync(join(tmpdir(), 'mailroom-dkim-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function configIssues(config: unknown, options?: { field?: string }): readonly FieldIssue[] {
  try {
    loadDkimKeys(config, options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `ConfigError expected, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG');
    return err.issues;
  }
  assert.fail('expected a ConfigError');
}

function assertIssue(issues: readonly FieldIssue[], field: string, reason: RegExp): void {
  assert.ok(
    issues.some((issue) => issue.field === field && reason.test(issue.message)),
    `expected ${field}: ${String(reason)}, got ${JSON.stringify(issues)}`,
  );
}

void describe('DKIM keys that load', () => {
  void it('reads RSA keys as PKCS#8 and PKCS#1 and Ed25519 keys as PKCS#8 and as a bare seed', () => {
    const keys = loadDkimKeys([
      { domain: 'a.example', selector: 'rsa8', privateKey: RSA_PKCS8 },
      { domain: 'b.example', selector: 'rsa1', privateKey: RSA_PKCS1, algorithm: 'rsa-sha256' },
      { domain: 'a.example', selector: 'ed8', privateKey: ED_PKCS8 },
      { domain: 'b.example', selector: 'seed', privateKey: ED_SEED, algorithm: 'ed25519-sha256' },
    ]);
    assert.deepEqual(
      keys.map((k) => [k.domain, k.selector, k.algorithm, k.bits]),
      [
        ['a.example', 'rsa8', 'rsa-sha256', 2048],
        ['b.example', 'rsa1', 'rsa-sha256', 2048],
        ['a.example', 'ed8', 'ed25519-sha256', 256],
        ['b.example', 'seed', 'ed25519-sha256', 256],
      ],
    );
    assert.ok(keys.every((k) => k.privateKey.type === 'private'));
    assert.ok(Object.isFrozen(keys));
  });

  void it('reads a key file once, at load', () => {
    const file = join(dir, 'ed.pem');
    writeFileSync(file, ED_PKCS8);
    const [key] = loadDkimKeys([
      { domain: 'News.Example', selector: 's1', privateKeyFile: file, subdomains: true },
    ]);
    assert.ok(key);
    rmSync(file);
    // The file is gone: the key was imported at load, not per message.
    assert.equal(key.domain, 'news.example');
    assert.equal(key.subdomains, true);
    assert.equal(key.privateKey.asymmetricKeyType, 'ed25519');
  });

  void it('accepts a 1024-bit RSA key (the floor) and converts an IDN domain to punycode', () => {
    const [key] = loadDkimKeys([{ domain: 'Bücher.example', selector: 'old', privateKey: RSA_1024 }]);
    assert.equal(key?.bits, 1024);
    assert.equal(key?.domain, 'xn--bcher-kva.example');
  });

  void it('accepts an empty list (a signer that signs nothing)', () => {
    assert.deepEqual(loadDkimKeys([]), []);
  });
});

void describe('DKIM configuration errors name the field', () => {
  void it('refuses a value that is not a list, and entries that are not objects', () => {
    assertIssue(configIssues({ domain: 'a.example' }), 'dkim', /must be a list of keys/);
    assertIssue(configIssues(undefined), 'dkim', /is required/);
    assertIssue(configIssues(['x']), 'dkim[0]', /must be an object/);
  });

  void it('names missing and mistyped fields and unknown settings', () => {
    const issues = configIssues([{ selector: 7, privateKey: ED_PKCS8, subdomains: 'yes', keyFile: 'x' }]);
    assertIssue(issues, 'dkim[0].domain', /^is required$/);
    assertIssue(issues, 'dkim[0].selector', /must be a string/);
    assertIssue(issues, 'dkim[0].subdomains', /must be true or false/);
    assertIssue(issues, 'dkim[0].keyFile', /is not a known setting/);
  });

  void it('refuses an unknown algorithm', () => {
    const issues = configIssues([
      { domain: 'a.example', selector: 's', algorithm: 'rsa-sha1', privateKey: RSA_PKCS8 },
    ]);
    assertIssue(issues, 'dkim[0].algorithm', /must be rsa-sha256 or ed25519-sha256/);
  });

  void it('refuses bad domains and selectors', () => {
    const issues = configIssues([
      { domain: 'localhost', selector: 's', privateKey: ED_PKCS8 },
      { domain: 'a.example', selector: '-bad', privateKey: ED_PKCS8 },
      { domain: 'b.example', selector: 'has space', privateKey: ED_PKCS8 },
      { domain: 'c.example', selector: '', privateKey: ED_PKCS8 },
      { domain: 'a b.example', selector: 's', privateKey: ED_PKCS8 },
    ]);
    assertIssue(issues, 'dkim[0].domain', /at least two labels/);
    assertIssue(issues, 'dkim[1].selector', /DNS labels/);
    assertIssue(issues, 'dkim[2].selector', /DNS labels/);
    assertIssue(issues, 'dkim[3].selector', /is empty/);
    assertIssue(issues, 'dkim[4].domain', /contains " "/);
  });

  void it('needs exactly one of privateKey and privateKeyFile', () => {
    const file = join(dir, 'both.pem');
    writeFileSync(file, ED_PKCS8);
    const issues = configIssues([
      { domain: 'a.example', selector: 's' },
      { domain: 'b.example', selector: 's', privateKey: ED_PKCS8, privateKeyFile: file },
    ]);
    assertIssue(issues, 'dkim[0].privateKey', /is required \(or privateKeyFile\)/);
    assertIssue(issues, 'dkim[1].privateKey', /not both/);
  });

  void it('says why a key file cannot be read', () => {
    const issues = configIssues([
      { domain: 'a.example', selector: 's', privateKey: ED_PKCS8 },
      { domain: 'a.example', selector: 't', privateKeyFile: join(dir, 'missing.pem') },
      { domain: 'b.example', selector: 's', privateKeyFile: dir },
    ]);
    assert.deepEqual(
      issues.filter((i) => i.field.endsWith('privateKeyFile')),
      [
        { field: 'dkim[1].privateKeyFile', message: 'cannot be read (ENOENT)' },
        { field: 'dkim[2].privateKeyFile', message: 'cannot be read (EISDIR)' },
      ],
    );
  });

  void it('refuses RSA keys under 1024 bits, other key types, encrypted, public and unreadable keys', () => {
    const file = join(dir, 'garbage.pem');
    writeFileSync(file, '-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n');
    const issues = configIssues([
      { domain: 'a.example', selector: 's0', privateKey: RSA_512 },
      { domain: 'a.example', selector: 's1', privateKey: EC_KEY },
      { domain: 'a.example', selector: 's2', privateKey: ED_ENCRYPTED },
      { domain: 'a.example', selector: 's3', privateKey: ED_PUBLIC },
      { domain: 'a.example', selector: 's4', privateKeyFile: file },
    ]);
    assertIssue(issues, 'dkim[0].privateKey', /RSA key of 512 bits; DKIM needs at least 1024/);
    assertIssue(issues, 'dkim[1].privateKey', /is a key of type ec; DKIM signs with RSA .* or Ed25519/);
    assertIssue(issues, 'dkim[2].privateKey', /encrypted/);
    assertIssue(issues, 'dkim[3].privateKey', /is a public key/);
    assertIssue(issues, 'dkim[4].privateKeyFile', /is not a PEM private key/);
  });

  void it('never repeats key material in an error', () => {
    const secretish = `-----BEGIN PRIVATE KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END PRIVATE KEY-----`;
    const issues = configIssues([{ domain: 'a.example', selector: 's', privateKey: secretish }]);
    assert.equal(issues.length, 1);
    assert.ok(!JSON.stringify(issues).includes('QUJDREVG'));
  });

  void it('refuses a key whose type is not the declared algorithm', () => {
    const issues = configIssues([
      { domain: 'a.example', selector: 's', algorithm: 'rsa-sha256', privateKey: ED_PKCS8 },
      { domain: 'a.example', selector: 't', algorithm: 'ed25519-sha256', privateKey: RSA_PKCS8 },
    ]);
    assert.deepEqual(issues, [
      { field: 'dkim[0].algorithm', message: 'is rsa-sha256 but the key is an ed25519-sha256 key' },
      { field: 'dkim[1].algorithm', message: 'is ed25519-sha256 but the key is an rsa-sha256 key' },
    ]);
  });

  void it('allows one key per algorithm per domain, each with its own selector', () => {
    const issues = configIssues([
      { domain: 'a.example', selector: 'r1', privateKey: RSA_PKCS8 },
      { domain: 'A.example', selector: 'r2', privateKey: RSA_PKCS1 },
      { domain: 'a.example', selector: 'R1', privateKey: ED_PKCS8 },
    ]);
    assertIssue(issues, 'dkim[1].domain', /already has an rsa-sha256 key \(dkim\[0\]\)/);
    assertIssue(issues, 'dkim[2].selector', /"R1" is already used for a.example by dkim\[0\]/);
  });

  void it('collects the problems of every entry in one error, under the given setting name', () => {
    const issues = configIssues(
      [
        { domain: 'a.example', selector: 'ok', privateKey: ED_PKCS8 },
        { domain: 'x', selector: 's', privateKey: ED_PKCS8 },
        { domain: 'b.example', selector: 's', privateKeyFile: join(dir, 'none.pem') },
      ],
      { field: 'MAILROOM_DKIM' },
    );
    assert.deepEqual(
      issues.map((i) => i.field),
      ['MAILROOM_DKIM[1].domain', 'MAILROOM_DKIM[2].privateKeyFile'],
    );
  });

  void it('refuses an expiry that is not a positive whole number of seconds', () => {
    for (const expireAfterSeconds of [0, -5, 1.5, Number.NaN]) {
      assert.throws(
        () => new DkimSigner([], { expireAfterSeconds }),
        (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'expireAfterSeconds',
      );
    }
    assert.throws(
      () => createDkimSigner([{ domain: 'a.example', selector: 's' }]),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'dkim[0].privateKey',
    );
  });
});
