import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, createUnsubscribeToken } from '@mailroom/core';
import {
  inboundRecipientCheck,
  readUnsubscribeMail,
  unsubscribeTokenCandidates,
  validateUnsubscribeSecrets,
} from '@mailroom/feedback';

const SECRET = 'unit-unsubscribe-secret-0123456789abcdef';
const TOKEN = createUnsubscribeToken({
  secret: SECRET,
  address: 'reader@example.org',
  list: 'weekly',
  scope: 'brand.example',
  issuedAt: Date.UTC(2026, 0, 2),
});

function raw(headers: string[], body: string): Buffer {
  return Buffer.from(
    `${['From: reader@example.org', 'To: unsubscribe@lists.example', ...headers].join('\r\n')}\r\n\r\n${body}`,
  );
}

describe('unsubscribe mails', () => {
  it('finds `unsubscribe-TOKEN` in the subject whatever surrounds it, else in the first line of the text', () => {
    for (const subject of [
      `unsubscribe-${TOKEN}`,
      `Re: unsubscribe-${TOKEN}`,
      `  RE:  Fwd: unsubscribe-${TOKEN}   `,
      `AW: [EXTERNAL] Unsubscribe-${TOKEN}`,
    ]) {
      assert.deepEqual(unsubscribeTokenCandidates(subject, ''), [TOKEN], subject);
    }
    assert.deepEqual(unsubscribeTokenCandidates('', `\n\n  unsubscribe-${TOKEN}  \nSent from my phone`), [
      TOKEN,
    ]);
    assert.deepEqual(unsubscribeTokenCandidates('Unsubscribe', `${TOKEN}\n`), [TOKEN], 'a bare token line');
    assert.deepEqual(
      unsubscribeTokenCandidates('unsubscribe-aaaaaaaaaaaaaaaaaaaa', `unsubscribe-${TOKEN}`),
      ['aaaaaaaaaaaaaaaaaaaa', TOKEN],
      'subject first, then the text',
    );
    assert.deepEqual(
      unsubscribeTokenCandidates('Please remove me', 'Hello\nunsubscribe-' + TOKEN),
      [],
      'only the first line',
    );
    assert.deepEqual(
      unsubscribeTokenCandidates(`resubscribe-${TOKEN}`, ''),
      [],
      'not a prefix of another word',
    );
  });

  it('verifies the token: encoded-word subjects, HTML-only bodies, forged and absent tokens', async () => {
    const secrets = [SECRET];
    const half = Math.floor(TOKEN.length / 2);
    // Q encoding writes `_` as =5F (a bare `_` is a space).
    const q = (text: string) => text.replace(/_/g, '=5F');
    // A client that encodes a long subject in two encoded words, folded: decoded and joined again.
    const encoded = raw(
      [`Subject: =?UTF-8?Q?unsubscribe-${q(TOKEN.slice(0, half))}?=\r\n =?UTF-8?Q?${q(TOKEN.slice(half))}?=`],
      'x\r\n',
    );
    const found = await readUnsubscribeMail(encoded, { secrets });
    assert.equal(found.outcome, 'token');
    assert.deepEqual(
      found.outcome === 'token' ? [found.token.address, found.token.scope, found.token.list] : [],
      ['reader@example.org', 'brand.example', 'weekly'],
    );

    const html = raw(
      ['Subject:', 'Content-Type: text/html; charset=utf-8'],
      `<p>unsubscribe-${TOKEN}</p>\r\n`,
    );
    assert.equal((await readUnsubscribeMail(html, { secrets })).outcome, 'token');

    const other = createUnsubscribeToken({
      secret: 'another-secret-0123456789abcdef-0123',
      address: 'reader@example.org',
      list: 'weekly',
      scope: '*',
    });
    assert.deepEqual(await readUnsubscribeMail(raw([`Subject: unsubscribe-${other}`], ''), { secrets }), {
      outcome: 'invalid_token',
      problem: 'bad_signature',
    });
    // A bad candidate in the subject does not hide a good one in the text.
    const both = await readUnsubscribeMail(
      raw([`Subject: unsubscribe-${other}`], `unsubscribe-${TOKEN}\r\n`),
      {
        secrets,
      },
    );
    assert.equal(both.outcome, 'token');
    assert.deepEqual(await readUnsubscribeMail(raw(['Subject: stop'], 'stop\r\n'), { secrets }), {
      outcome: 'no_token',
    });
    assert.deepEqual(await readUnsubscribeMail(Buffer.alloc(0), { secrets }), { outcome: 'no_token' });
    // The old secret of a rotation still verifies.
    assert.equal(
      (
        await readUnsubscribeMail(raw([`Subject: unsubscribe-${TOKEN}`], ''), {
          secrets: ['new-secret-0123456789abcdef-0123456', SECRET],
        })
      ).outcome,
      'token',
    );
  });

  it('the unsubscribe address is its own mailbox, taken before the bounce domain; bad settings are named', () => {
    const check = inboundRecipientCheck(
      'bounce.example.com',
      ['fbl@example.com'],
      'Unsubscribe@Bounce.Example.com',
    );
    assert.equal(check('unsubscribe@bounce.example.com'), 'unsubscribe');
    assert.equal(check('UNSUBSCRIBE@bounce.example.com'), 'unsubscribe');
    assert.equal(check('bounces+x@bounce.example.com'), 'bounce');
    assert.equal(check('fbl@example.com'), 'complaints');
    assert.equal(check('unsubscribe@example.com'), undefined);
    assert.equal(inboundRecipientCheck('bounce.example.com', [])('unsubscribe@lists.example'), undefined);
    assert.throws(
      () => inboundRecipientCheck('bounce.example.com', ['fbl@example.com'], 'FBL@example.com'),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'unsubscribeAddress',
    );
    assert.throws(() => inboundRecipientCheck('bounce.example.com', [], 'not an address'), ConfigError);
    assert.throws(() => validateUnsubscribeSecrets([]), ConfigError);
    assert.throws(
      () => validateUnsubscribeSecrets([SECRET, 'short']),
      (err: unknown) => err instanceof ConfigError && err.issues[0]?.field === 'unsubscribe.secrets[1]',
    );
  });
});
