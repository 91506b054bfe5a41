// The DKIM signer's choices: which key signs (by the From domain), which headers are signed and oversigned,
// the tags and folding of the DKIM-Signature header, and the message returned unchanged when no key applies.
// Whether the signatures verify is checked by an independent verifier in test/integration/deliverability.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseMessage, ValidationError, type FieldIssue } from '@mailroom/core';
import {
  compileMessage,
  createDkimSigner,
  DkimSigner,
  loadDkimKeys,
  type DkimKeyConfig,
  type DkimSignResult,
} from '@mailroom/mime';

const RSA = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const ED = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const NOW_MS = 1_741_082_706_789; // 2025-03-04T10:05:06.789Z
const NOW_S = 1_741_082_706;

function message(from: string, headers: Record<string, string> = {}): Buffer {
  return compileMessage(
    parseMessage({
      from,
      to: 'Ada <ada@example.org>',
      subject: 'Hello',
      text: 'Hi Ada,\n\nsee you.\n',
      headers,
    }),
    { messageId: '<01jnmr6k7a0000000000000000@news.example.com>', date: new Date(NOW_MS) },
  );
}

/** The DKIM-Signature fields at the top of a signed message, unfolded, and the rest of the message. */
function split(result: DkimSignResult): { signatures: string[]; rest: Buffer; folded: string[] } {
  const text = result.raw.toString('latin1');
  const signatures: string[] = [];
  const folded: string[] = [];
  let at = 0;
  while (text.startsWith('DKIM-Signature:', at)) {
    let end = text.indexOf('\r\n', at);
    while (text[end + 2] === ' ' || text[end + 2] === '\t') end = text.indexOf('\r\n', end + 2);
    const field = text.slice(at, end);
    folded.push(field);
    signatures.push(field.replace(/\r\n/g, ''));
    at = end + 2;
  }
  return { signatures, rest: result.raw.subarray(at), folded };
}

/** The tags of an unfolded DKIM-Signature field, whitespace removed from the values. */
function tags(field: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of field.slice('DKIM-Signature:'.length).split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s+/g, ''));
  }
  return out;
}

function validationIssues(action: () => unknown): readonly FieldIssue[] {
  try {
    action();
  } catch (err) {
    assert.ok(err instanceof ValidationError, `ValidationError expected, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected a ValidationError');
}

void describe('key choice by the From domain', () => {
  const config: DkimKeyConfig[] = [
    { domain: 'example.com', selector: 'parent', privateKey: ED, subdomains: true },
    { domain: 'news.example.com', selector: 'news', privateKey: ED },
    { domain: 'other.example', selector: 'other', privateKey: ED },
    { domain: 'deep.a.example.net', selector: 'deep', privateKey: ED, subdomains: true },
    { domain: 'example.net', selector: 'net', privateKey: ED, subdomains: true },
  ];
  const signer = createDkimSigner(config, { now: () => NOW_MS });
  const selectorFor = (from: string): string | undefined => {
    const result = signer.sign(message(from));
    return result.signed ? result.signatures.map((s) => s.selector).join(',') : undefined;
  };

  void it('signs with the key of exactly the From domain, case-insensitively', () => {
    assert.equal(selectorFor('News <news@news.example.com>'), 'news');
    assert.equal(selectorFor('news@NEWS.Example.COM'), 'news');
    assert.equal(selectorFor('x@other.example'), 'other');
  });

  void it('falls back to the nearest parent domain configured with subdomains: true', () => {
    assert.equal(selectorFor('x@mail.example.com'), 'parent');
    assert.equal(selectorFor('x@a.b.example.com'), 'parent');
    assert.equal(selectorFor('x@x.deep.a.example.net'), 'deep');
    assert.equal(selectorFor('x@a.example.net'), 'net');
  });

  void it('does not sign subdomains of a domain configured without subdomains: true', () => {
    assert.equal(selectorFor('x@mail.news.example.com'), 'parent');
    assert.equal(selectorFor('x@sub.other.example'), undefined);
  });

  void it('returns the same Buffer, unsigned, when no key applies, and says which domain it looked for', () => {
    const raw = message('Someone <someone@unrelated.example>');
    const result = signer.sign(raw);
    assert.equal(result.signed, false);
    assert.equal(result.raw, raw);
    assert.equal(result.fromDomain, 'unrelated.example');
    assert.equal(signer.keysFor('com').length, 0);
    assert.equal(signer.keysFor('example').length, 0);
  });

  void it('signs nothing with an empty configuration', () => {
    const raw = message('news@news.example.com');
    const result = new DkimSigner([]).sign(raw);
    assert.equal(result.signed, false);
    assert.equal(result.raw, raw);
  });
});

void describe('the DKIM-Signature header', () => {
  const dual: DkimKeyConfig[] = [
    { domain: 'news.example.com', selector: 'rsa2025', privateKey: RSA },
    { domain: 'news.example.com', selector: 'ed2025', privateKey: ED },
  ];

  void it('dual-signs with every key of the domain, in configuration order, prepended to the unchanged message', () => {
    const raw = message('News <news@news.example.com>');
    const result = createDkimSigner(dual, { now: () => NOW_MS }).sign(raw);
    assert.ok(result.signed);
    assert.deepEqual(result.signatures, [
      { domain: 'news.example.com', selector: 'rsa2025', algorithm: 'rsa-sha256' },
      { domain: 'news.example.com', selector: 'ed2025', algorithm: 'ed25519-sha256' },
    ]);
    const { signatures, rest } = split(result);
    assert.equal(signatures.length, 2);
    assert.deepEqual(rest, raw);
    const [rsa, ed] = signatures.map(tags);
    assert.ok(rsa && ed);
    assert.equal(rsa.get('a'), 'rsa-sha256');
    assert.equal(ed.get('a'), 'ed25519-sha256');
    for (const t of [rsa, ed]) {
      assert.equal(t.get('v'), '1');
      assert.equal(t.get('c'), 'relaxed/relaxed');
      assert.equal(t.get('d'), 'news.example.com');
      assert.equal(t.get('t'), String(NOW_S));
      assert.equal(t.has('x'), false);
      assert.equal(t.has('l'), false);
    }
    assert.equal(rsa.get('s'), 'rsa2025');
    assert.equal(ed.get('s'), 'ed2025');
    assert.equal(rsa.get('bh'), ed.get('bh'));
    assert.equal(Buffer.from(rsa.get('b') ?? '', 'base64').length, 256);
    assert.equal(Buffer.from(ed.get('b') ?? '', 'base64').length, 64);
  });

  void it('writes x= when an expiry is configured', () => {
    const signer = createDkimSigner(dual, { now: () => NOW_MS, expireAfterSeconds: 7 * 86_400 });
    const [first] = split(signer.sign(message('news@news.example.com'))).signatures.map(tags);
    assert.equal(first?.get('t'), String(NOW_S));
    assert.equal(first?.get('x'), String(NOW_S + 7 * 86_400));
  });

  void it('signs the listed headers present, oversigning From, List-Unsubscribe and List-Unsubscribe-Post', () => {
    const signer = createDkimSigner(dual.slice(1), { now: () => NOW_MS });
    const plain = tags(split(signer.sign(message('news@news.example.com'))).signatures[0] ?? '');
    assert.equal(
      plain.get('h'),
      'from:from:to:subject:date:message-id:mime-version:content-type:content-transfer-encoding',
    );
    const list = message('news@news.example.com', {
      'List-Id': 'News <news.example.com>',
      'List-Unsubscribe': '<https://news.example.com/u/1>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      'In-Reply-To': '<a@b.example>',
      Keywords: 'not signed',
    });
    assert.equal(
      tags(split(signer.sign(list)).signatures[0] ?? '').get('h'),
      'from:from:to:subject:date:message-id:in-reply-to:mime-version:content-type:content-transfer-encoding:' +
        'list-id:list-unsubscribe:list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post',
    );
  });

  void it('signs Reply-To and Feedback-ID, and every instance of a repeated header', () => {
    const raw = Buffer.from(
      'From: news@news.example.com\r\nTo: a@example.org\r\nTo: b@example.org\r\nReply-To: r@news.example.com\r\n' +
        'Feedback-ID: 42:spring:newsletter:mailroom\r\nSubject: x\r\n\r\nbody\r\n',
      'latin1',
    );
    const result = createDkimSigner(dual.slice(1), { now: () => NOW_MS }).sign(raw);
    assert.equal(
      tags(split(result).signatures[0] ?? '').get('h'),
      'from:from:to:to:subject:reply-to:feedback-id:feedback-id',
    );
  });

  void it('folds every line of the header to at most 78 characters', () => {
    const signer = createDkimSigner(dual, { now: () => NOW_MS, expireAfterSeconds: 86_400 });
    const raw = message('news@news.example.com', {
      'List-Id': 'News <news.example.com>',
      'List-Unsubscribe': '<https://news.example.com/u/1>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      'In-Reply-To': '<a@b.example>',
      References: '<a@b.example>',
    });
    const { folded } = split(signer.sign(raw));
    assert.equal(folded.length, 2);
    for (const field of folded) {
      const lines = field.split('\r\n');
      assert.ok(lines.length > 3, field);
      for (const line of lines) assert.ok(line.length <= 78, `${line.length}: ${line}`);
      for (const line of lines.slice(1)) assert.match(line, /^ \S/);
    }
  });

  void it('gives the same bytes on the thread pool (signAsync) as on the calling thread', async () => {
    const signer = createDkimSigner(dual, { now: () => NOW_MS });
    const raw = message('news@news.example.com');
    const sync = signer.sign(raw);
    const async = await signer.signAsync(raw);
    assert.ok(sync.signed && async.signed);
    assert.deepEqual(async.raw, sync.raw);
    const unsigned = await signer.signAsync(message('x@unrelated.example'));
    assert.equal(unsigned.signed, false);
  });

  void it('changes the body hash when one body octet changes, and not for trailing blank lines', () => {
    const signer = createDkimSigner(dual.slice(1), { now: () => NOW_MS });
    const head = 'From: news@news.example.com\r\nSubject: x\r\n\r\n';
    const bh = (body: string) =>
      tags(split(signer.sign(Buffer.from(head + body, 'latin1'))).signatures[0] ?? '').get('bh');
    assert.equal(bh('Hello  world\r\n'), bh('Hello world \r\n\r\n\r\n'));
    assert.notEqual(bh('Hello world\r\n'), bh('Hello worle\r\n'));
  });
});

void describe('messages that cannot be signed as they will be received', () => {
  const signer = new DkimSigner(
    loadDkimKeys([{ domain: 'news.example.com', selector: 's', privateKey: ED }]),
  );
  const issuesOf = (text: string) => validationIssues(() => signer.sign(Buffer.from(text, 'latin1')));

  void it('refuses a message without From, with two From headers or a From without a domain', () => {
    assert.deepEqual(issuesOf('To: a@example.org\r\n\r\nx\r\n'), [
      { field: 'from', message: 'the message has no From header' },
    ]);
    assert.deepEqual(issuesOf('From: a@news.example.com\r\nFrom: b@news.example.com\r\n\r\nx\r\n'), [
      { field: 'from', message: 'the message has 2 From headers' },
    ]);
    assert.deepEqual(issuesOf('From: Nobody\r\n\r\nx\r\n'), [
      { field: 'from', message: 'the From header holds no address with a domain' },
    ]);
  });

  void it('refuses a header block with a bare LF or CR, a line that is no field, or no final line break', () => {
    const cases: [string, RegExp][] = [
      ['From: a@news.example.com\nSubject: x\r\n\r\nx\r\n', /bare LF/],
      ['From: a@news.example.com\rSubject: x\r\n\r\nx\r\n', /bare CR/],
      ['From: a@news.example.com\r\nnot a field\r\n\r\nx\r\n', /not a header field/],
      [' continuation\r\nFrom: a@news.example.com\r\n\r\n', /starts with a continuation/],
      ['From: a@news.example.com', /does not end with a line break/],
    ];
    for (const [text, reason] of cases) {
      const issues = issuesOf(text);
      assert.equal(issues[0]?.field, '(message)', text);
      assert.match(issues[0]?.message ?? '', reason, text);
    }
  });

  void it('signs a message that has headers and no body', () => {
    const result = signer.sign(Buffer.from('From: a@news.example.com\r\nSubject: x\r\n', 'latin1'));
    assert.ok(result.signed);
    // The SHA-256 of an empty relaxed body.
    assert.equal(
      tags(split(result).signatures[0] ?? '').get('bh'),
      '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
    );
  });
});
