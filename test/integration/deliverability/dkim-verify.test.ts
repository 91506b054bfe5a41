// DKIM signatures made by Mailroom, checked by an independent verifier: Debian's python3-dkim (dkimpy), with
// the DNS records of keys generated here. Messages come from the real composer (compileMessage and
// compileTemplate().render()); one goes through a real SMTP server to show the transport keeps it valid.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { parseMailbox, parseMessage } from '@mailroom/core';
import {
  compileMessage,
  compileTemplate,
  createDkimSigner,
  dkimDnsRecord,
  loadDkimKeys,
  type DkimKeyConfig,
  type DkimSigner,
} from '@mailroom/mime';
import { startSink, type Sink } from '@mailroom/sink';
import { createSender, SENDER_KINDS, type RelayConfig } from '@mailroom/smtp';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { verifyWithDkimpy, type DkimRecords, type MessageVerdict } from './dkim-verifier.js';

const DOMAIN = 'news.example.test';
const DATE = new Date();
const pem = (key: { export(options: { type: 'pkcs8'; format: 'pem' }): string | Buffer }): string =>
  key.export({ type: 'pkcs8', format: 'pem' }).toString();

const rsaKey = pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
const edKey = pem(generateKeyPairSync('ed25519').privateKey);
const otherEdKey = pem(generateKeyPairSync('ed25519').privateKey);

const RSA_ENTRY: DkimKeyConfig = { domain: DOMAIN, selector: 'rsa2025', privateKey: rsaKey };
const ED_ENTRY: DkimKeyConfig = { domain: DOMAIN, selector: 'ed2025', privateKey: edKey };

/** The TXT records of every key, as the domain would publish them. */
function recordsFor(config: readonly DkimKeyConfig[]): Record<string, string> {
  const records: Record<string, string> = {};
  for (const key of loadDkimKeys(config))
    records[`${key.selector}._domainkey.${key.domain}`] = dkimDnsRecord(key);
  return records;
}
const RECORDS: DkimRecords = recordsFor([RSA_ENTRY, ED_ENTRY]);

const SIGNERS: readonly (readonly [string, DkimSigner, readonly string[]])[] = [
  ['RSA-2048', createDkimSigner([RSA_ENTRY], { expireAfterSeconds: 86_400 }), ['rsa-sha256']],
  ['Ed25519', createDkimSigner([ED_ENTRY]), ['ed25519-sha256']],
  ['RSA-2048 + Ed25519', createDkimSigner([RSA_ENTRY, ED_ENTRY]), ['rsa-sha256', 'ed25519-sha256']],
];

const ATTACHMENT = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 131 + 7) % 256)).toString(
  'base64',
);

/** Messages from the real composer, each with something a signer or a transport could get wrong. */
function composedMessages(): [string, Buffer][] {
  const single = (input: Record<string, unknown>) =>
    compileMessage(
      parseMessage({ from: `Mailroom News <news@${DOMAIN}>`, to: 'ada@example.org', ...input }),
      {
        messageId: `<01jnmr6k7a${Math.random().toString(36).slice(2, 12)}@${DOMAIN}>`,
        date: DATE,
      },
    );
  const template = compileTemplate({
    from: { name: 'Mailroom Wöchentlich', address: `weekly@${DOMAIN}` },
    subject: '{{name}}, Ihre Ausgabe für März ☕',
    text: 'Hallo {{name}},\n\ndiese Woche: Größe, Übermut und ein Punkt:\n.\n..\nEnde.   \n\n\n',
    html: '<p>Hallo <b>{{name}}</b>,</p>\n<p>diese Woche: Größe &amp; Übermut</p>\n.\n',
    headers: { 'List-Id': `Weekly <weekly.${DOMAIN}>` },
  });
  const rendered = template.render({
    to: parseMailbox({ name: 'Zoë Ångström', address: 'zoe@example.org' }, 'to'),
    messageId: `<01jnmr6k7b0000000000000001@${DOMAIN}>`,
    date: DATE,
    vars: { name: 'Zoë' },
    headers: {
      'List-Unsubscribe': `<https://${DOMAIN}/u/zoe>, <mailto:unsubscribe@${DOMAIN}?subject=zoe>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  });
  return [
    [
      'plain ASCII text',
      single({
        subject: 'Your receipt',
        text: 'Thanks for your order.\n.\n.leading dot line\n  indented   line with  runs  \n\n\n',
      }),
    ],
    [
      'UTF-8 subject, display names and body (encoded-words, quoted-printable)',
      single({
        from: { name: 'Équipe Mailroom', address: `team@${DOMAIN}` },
        to: { name: 'Jürgen Müller', address: 'juergen@example.org' },
        subject: 'Grüße aus Köln — naïve café 🎉',
        text: 'Schöne Grüße,\nçà et là, 1 € = 100 ¢\n',
      }),
    ],
    [
      'CJK body (base64)',
      single({ subject: '注文の確認', text: 'ご注文ありがとうございます。\n'.repeat(20) }),
    ],
    ['campaign member: HTML + text alternative with list headers', rendered],
    [
      'HTML, text and an attachment',
      single({
        subject: 'Your invoice',
        text: 'Invoice attached.',
        html: '<p>Invoice <b>attached</b>.</p>',
        attachments: [{ filename: 'Rechnung März.pdf', contentType: 'application/pdf', content: ATTACHMENT }],
      }),
    ],
  ];
}

function assertVerified(
  verdict: MessageVerdict | undefined,
  algorithms: readonly string[],
  what: string,
): void {
  assert.ok(verdict, what);
  assert.deepEqual(
    verdict.signatures.map((s) => ({ ok: s.ok, a: s.a, d: s.d, error: s.error })),
    algorithms.map((a) => ({ ok: true, a, d: DOMAIN, error: null })),
    what,
  );
  assert.equal(verdict.verify, true, what);
}

function assertRejected(verdict: MessageVerdict | undefined, count: number, what: string): void {
  assert.ok(verdict, what);
  assert.equal(verdict.signatures.length, count, what);
  for (const signature of verdict.signatures)
    assert.equal(signature.ok, false, `${what}: ${JSON.stringify(signature)}`);
  assert.equal(verdict.verify, false, what);
}

/** A copy of `raw` with the first occurrence of `from` (latin1) replaced by `to` of the same length. */
function tamper(raw: Buffer, from: string, to: string, after = 0): Buffer {
  assert.equal(from.length, to.length);
  const at = raw.indexOf(from, after, 'latin1');
  assert.ok(at >= 0, `"${from}" not found`);
  const copy = Buffer.from(raw);
  copy.write(to, at, 'latin1');
  return copy;
}

/** Offset of the body: after the first empty line. */
function bodyOffset(raw: Buffer): number {
  const at = raw.indexOf('\r\n\r\n');
  assert.ok(at > 0);
  return at + 4;
}

void describe('DKIM signatures verified by python3-dkim', { timeout: 180_000 }, () => {
  void it('verifies composed messages signed with RSA-2048, Ed25519 and both', async () => {
    const cases = composedMessages();
    const signed: Buffer[] = [];
    const labels: string[] = [];
    const algorithms: (readonly string[])[] = [];
    for (const [name, raw] of cases) {
      for (const [signerName, signer, algs] of SIGNERS) {
        const result = signer.sign(raw);
        assert.ok(result.signed, `${name} / ${signerName} was not signed`);
        signed.push(result.raw);
        labels.push(`${name} / ${signerName}`);
        algorithms.push(algs);
      }
    }
    const verdicts = await verifyWithDkimpy(signed, RECORDS);
    assert.equal(verdicts.length, signed.length);
    verdicts.forEach((verdict, i) => assertVerified(verdict, algorithms[i] ?? [], labels[i] ?? ''));
  });

  void it('verifies the signatures made on the thread pool (signAsync)', async () => {
    const signer = SIGNERS[2]?.[1];
    assert.ok(signer);
    const messages = await Promise.all(
      composedMessages().map(async ([, raw]) => (await signer.signAsync(raw)).raw),
    );
    const verdicts = await verifyWithDkimpy(messages, RECORDS);
    verdicts.forEach((verdict, i) =>
      assertVerified(verdict, ['rsa-sha256', 'ed25519-sha256'], `message ${i}`),
    );
  });

  void it('rejects a message changed after signing: one body octet, the Subject, an added From', async () => {
    const signer = SIGNERS[2]?.[1];
    assert.ok(signer);
    const cases = composedMessages();
    const plain = signer.sign(cases[0]?.[1] ?? Buffer.alloc(0)).raw;
    const campaign = signer.sign(cases[3]?.[1] ?? Buffer.alloc(0)).raw;
    const bodyStart = bodyOffset(plain);
    const tampered: [string, Buffer][] = [
      ['untouched (control)', plain],
      ['one body octet', tamper(plain, 'order', 'ordes', bodyStart)],
      ['one Subject octet', tamper(plain, 'Subject: Your receipt', 'Subject: Your receipT')],
      ['a second From above the first', Buffer.concat([Buffer.from(`From: ceo@${DOMAIN}\r\n`), plain])],
      [
        'List-Unsubscribe replaced by a second one',
        Buffer.concat([Buffer.from('List-Unsubscribe: <https://evil.example/u>\r\n'), campaign]),
      ],
      [
        'a trailing whitespace change only (relaxed: still valid)',
        tamper(plain, 'runs  \r\n', 'runs \t\r\n'),
      ],
    ];
    const verdicts = await verifyWithDkimpy(
      tampered.map(([, raw]) => raw),
      RECORDS,
    );
    assertVerified(verdicts[0], ['rsa-sha256', 'ed25519-sha256'], tampered[0]?.[0] ?? '');
    for (let i = 1; i <= 4; i++) assertRejected(verdicts[i], 2, tampered[i]?.[0] ?? '');
    assertVerified(verdicts[5], ['rsa-sha256', 'ed25519-sha256'], tampered[5]?.[0] ?? '');
  });

  void it('rejects a signature whose DNS record holds another key or is missing', async () => {
    const signed = SIGNERS[1]?.[1].sign(composedMessages()[0]?.[1] ?? Buffer.alloc(0)).raw;
    assert.ok(signed);
    const wrong = recordsFor([{ ...ED_ENTRY, privateKey: otherEdKey }]);
    const [withWrongKey] = await verifyWithDkimpy([signed], wrong);
    const [withoutRecord] = await verifyWithDkimpy([signed], {});
    assertRejected(withWrongKey, 1, 'another key');
    assertRejected(withoutRecord, 1, 'no record');
  });

  void it("signs RFC 8463's example message with its key so that its published record verifies it", async () => {
    const signer = createDkimSigner(
      [
        {
          domain: 'football.example.com',
          selector: 'brisbane',
          privateKey: 'nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=',
        },
      ],
      { now: () => 1_528_637_909_000 },
    );
    const message = Buffer.from(
      [
        'From: Joe SixPack <joe@football.example.com>',
        'To: Suzie Q <suzie@shopping.example.net>',
        'Subject: Is dinner ready?',
        'Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)',
        'Message-ID: <20030712040037.46341.5F8J@football.example.com>',
        '',
        'Hi.',
        '',
        'We lost the game.  Are you hungry yet?',
        '',
        'Joe.',
        '',
      ].join('\r\n'),
      'latin1',
    );
    const [verdict] = await verifyWithDkimpy([signer.sign(message).raw], {
      'brisbane._domainkey.football.example.com':
        'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
    });
    assert.deepEqual(
      verdict?.signatures.map((s) => [s.ok, s.d, s.s, s.a]),
      [[true, 'football.example.com', 'brisbane', 'ed25519-sha256']],
    );
  });
});

void describe('DKIM signatures after a real SMTP transaction', { timeout: 120_000 }, () => {
  let sink: Sink;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    sink = await startSink({ keepRaw: true });
  });

  after(async () => {
    await sink.close();
    await assertNoResourceLeaks(baseline);
  });

  const relay = (port: number): RelayConfig => ({
    name: 'dkim',
    host: '127.0.0.1',
    port,
    tlsMode: 'none',
    verifyCertificates: true,
    maxConnections: 1,
    maxMessagesPerConnection: 100,
    connectionTimeoutMs: 10_000,
    greetingTimeoutMs: 10_000,
    socketTimeoutMs: 10_000,
    clientName: 'dkim.mailroom.test',
  });

  for (const kind of SENDER_KINDS) {
    void it(`the bytes the server received through the ${kind} sender still verify (dot-stuffing undone)`, async () => {
      sink.reset();
      const signer = SIGNERS[2]?.[1];
      assert.ok(signer);
      const composed = composedMessages();
      // Both have lines starting with a dot, which SMTP doubles on the wire and the server undoes.
      const sent = [composed[0]?.[1], composed[3]?.[1]].map((raw) => signer.sign(raw ?? Buffer.alloc(0)).raw);
      assert.ok(sent.every((raw) => raw.includes('\r\n.')));
      const sender = createSender(relay(sink.port), kind);
      try {
        for (const raw of sent) await sender.send({ from: `bounce@${DOMAIN}`, to: 'ada@example.org' }, raw);
      } finally {
        sender.close();
      }
      await sink.waitForMessages(sent.length);
      const received = sink.messages.map((m) => {
        assert.ok(m.raw, 'the sink kept no raw message');
        return m.raw;
      });
      assert.equal(received.length, sent.length);
      const verdicts = await verifyWithDkimpy(received, RECORDS);
      verdicts.forEach((verdict, i) =>
        assertVerified(verdict, ['rsa-sha256', 'ed25519-sha256'], `${kind} message ${i}`),
      );
    });
  }
});
