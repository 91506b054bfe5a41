// Compiled messages against nodemailer's MailComposer: for awkward inputs, both are parsed with mailparser
// and must carry the same addresses, subject, ids, date, bodies, attachments and extra headers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { compileTemplate, type MessageTemplate } from '@mailroom/mime';
import {
  assertEquivalent,
  assertRawInvariants,
  binaryBytes,
  composeConcrete,
  recipient,
} from './mime-oracle.js';

const FROM = 'Mailroom Weekly <weekly@news.example.test>';
const ADA = { name: 'Ada Lovelace', address: 'ada@example.org' };

function attachment(filename: string, bytes: Buffer, contentType?: string, contentId?: string) {
  return {
    filename,
    content: bytes.toString('base64'),
    ...(contentType === undefined ? {} : { contentType }),
    ...(contentId === undefined ? {} : { contentId }),
  };
}

const NEWSLETTER: MessageTemplate = {
  from: FROM,
  subject: '{{name}}, your Mailroom Weekly is here',
  text: "Hello {{name}},\n\nHere is this week's issue, picked for you.\n\nUnsubscribe: {{unsubscribeUrl}}\n",
  html:
    '<!doctype html><html><body style="font-family:sans-serif;max-width:640px;margin:auto">\n' +
    "<h1>Mailroom Weekly</h1>\n<p>Dear {{name}}, here is this week's issue, picked for you.</p>\n" +
    '<p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>\n</body></html>\n',
  headers: { 'X-Campaign': 'spring-2025', 'List-Id': 'Mailroom Weekly <weekly.news.example.test>' },
};

const VARS = { name: 'Ada Lovelace', unsubscribeUrl: 'https://news.example.test/u/1' };

void describe('compiled messages equal MailComposer: structure', () => {
  void it('text and html (multipart/alternative) with merge fields and per-recipient headers', async () => {
    const { parsed } = await assertEquivalent(
      NEWSLETTER,
      recipient(ADA, VARS, {
        'List-Unsubscribe':
          '<https://news.example.test/u/1>, <mailto:unsubscribe@news.example.test?subject=1>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      }),
    );
    assert.equal(parsed.subject, 'Ada Lovelace, your Mailroom Weekly is here');
    assert.match(parsed.text ?? '', /^Hello Ada Lovelace,\n/);
  });

  void it('text only (text/plain at the root)', async () => {
    const { compiled } = await assertEquivalent(
      { from: FROM, subject: 'Plain', text: 'Only text, {{name}}.\n' },
      recipient(ADA, VARS),
    );
    assert.match(compiled.toString('latin1'), /\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
    assert.doesNotMatch(compiled.toString('latin1'), /multipart/);
  });

  void it('html only (text/html at the root)', async () => {
    const { parsed, compiled } = await assertEquivalent(
      { from: FROM, subject: 'Html', html: '<p>Only html, {{name}}.</p>' },
      recipient(ADA, VARS),
    );
    // A single-part message ends with CRLF, which the parser keeps (MailComposer does the same).
    assert.equal(parsed.html, '<p>Only html, Ada Lovelace.</p>\n');
    assert.doesNotMatch(compiled.toString('latin1'), /multipart/);
  });

  void it('one binary attachment (multipart/mixed around the alternative)', async () => {
    const { parsed } = await assertEquivalent(
      { ...NEWSLETTER, attachments: [attachment('report.pdf', binaryBytes(5000), 'application/pdf')] },
      recipient(ADA, VARS),
    );
    assert.equal(parsed.attachments.length, 1);
    assert.deepEqual(parsed.attachments[0]?.content, binaryBytes(5000));
  });

  void it('three attachments: binary, empty, non-ASCII and long file names, default type', async () => {
    const { parsed } = await assertEquivalent(
      {
        from: FROM,
        subject: 'Files for {{name}}',
        text: 'See attached.',
        attachments: [
          attachment('données été 2025.bin', binaryBytes(70_001, 7)),
          attachment('empty.txt', Buffer.alloc(0), 'text/plain'),
          attachment(`${'long-name-'.repeat(20)}報告書.pdf`, binaryBytes(3, 3), 'application/pdf'),
        ],
      },
      recipient(ADA, VARS),
    );
    assert.equal(parsed.attachments.length, 3);
  });

  void it('inline image with a Content-ID next to html (multipart/related) and a plain attachment', async () => {
    await assertEquivalent(
      {
        ...NEWSLETTER,
        html: '<p>Hi {{name}}</p><img src="cid:logo@mailroom">',
        attachments: [
          attachment('logo.png', binaryBytes(900, 5), 'image/png', 'logo@mailroom'),
          attachment('terms.pdf', binaryBytes(100, 9), 'application/pdf'),
        ],
      },
      recipient(ADA, VARS),
    );
  });

  void it('html only with an inline image (multipart/related at the root)', async () => {
    const { compiled } = await assertEquivalent(
      {
        from: FROM,
        subject: 'Logo',
        html: '<img src="cid:logo@mailroom">',
        attachments: [attachment('logo.png', binaryBytes(300, 2), 'image/png', 'logo@mailroom')],
      },
      recipient(ADA, VARS),
    );
    assert.match(compiled.toString('latin1'), /Content-Type: multipart\/related; type="text\/html";/);
  });

  void it('a message/rfc822 attachment travels unencoded (7bit), as RFC 2046 requires', async () => {
    const inner = 'From: a@example.org\r\nSubject: inner\r\n\r\nInner body\r\n';
    const { compiled } = await assertEquivalent(
      {
        from: FROM,
        subject: 'Forward',
        text: 'Forwarded.',
        attachments: [attachment('inner.eml', Buffer.from(inner), 'message/rfc822')],
      },
      recipient(ADA, VARS),
    );
    assert.ok(compiled.toString('latin1').includes(inner));
  });
});

void describe('compiled messages equal MailComposer: awkward text', () => {
  const cases: [string, Partial<MessageTemplate>, Record<string, unknown>][] = [
    ['accented subject and names', { subject: 'Crème brûlée pour {{name}}' }, { name: 'Zoë Ångström' }],
    ['CJK subject and names', { subject: '{{name}}様、今週のニュースレター' }, { name: '山田太郎' }],
    ['emoji subject', { subject: '🎉🎉 {{name}} 🎉 Sale 🎉' }, { name: 'Ada 🚀' }],
    ['subject of only emoji', { subject: '🎉🎉🎉' }, {}],
    [
      'subject holding an invalid encoded-word look-alike',
      { subject: 'Odd =?UTF-8?Q?a b?= {{name}}' },
      { name: 'x' },
    ],
    ['subject with quotes and backslashes', { subject: 'He said "hi" \\ {{name}}' }, { name: "O'Brien" }],
    [
      'long subject that must fold',
      { subject: `${'A rather long subject line with many words '.repeat(6)}{{name}}` },
      { name: 'Ada' },
    ],
    [
      'long non-ASCII subject that must fold',
      { subject: `${'Ünïcödé wörds '.repeat(30)}{{name}}` },
      { name: 'é' },
    ],
    ['long unbroken ASCII subject (encoded-words so it can fold)', { subject: 'x'.repeat(990) }, {}],
    [
      'very long lines without spaces',
      {
        text: `${'a'.repeat(3000)}\n${'é'.repeat(1500)}\n${'漢'.repeat(1200)}\n`,
        html: `<p>${'b'.repeat(5000)}</p>`,
      },
      {},
    ],
    [
      'dots at the start of lines and lines that are just a dot',
      { text: '.\n.hidden\n..two\nend\n.\n', html: '.\n<p>.</p>\n.\n' },
      {},
    ],
    [
      'trailing spaces and tabs',
      { text: 'space   \ntab\t\t\nboth \t \nlast  ', html: '<p>x</p>   \n  ' },
      {},
    ],
    ['CRLF input', { text: 'one\r\ntwo\r\n\r\nthree\r\n', html: '<p>one</p>\r\n<p>two</p>\r\n' }, {}],
    ['LF input', { text: 'one\ntwo\n\nthree\n', html: '<p>one</p>\n<p>two</p>\n' }, {}],
    ['mixed CRLF and LF input', { text: 'one\r\ntwo\nthree\r\n\nfour' }, {}],
    [
      'CJK text (base64 body)',
      { text: '日本語のテキストです。\n'.repeat(40), html: '<p>中文内容</p>'.repeat(30) },
      {},
    ],
    [
      'boundary marker and QP specials in the text',
      { text: 'a =_ b == c =3D d\n', html: '<a href="x">=_</a>' },
      {},
    ],
    [
      'equals signs and 76-character lines',
      { text: `${'='.repeat(80)}\n${'y'.repeat(76)}\n${'z'.repeat(77)}\n` },
      {},
    ],
  ];
  for (const [title, changes, vars] of cases) {
    void it(title, async () => {
      const template: MessageTemplate = {
        from: FROM,
        subject: 'Subject',
        text: 'Hello {{name}}',
        html: '<p>Hello {{name}}</p>',
        ...changes,
      };
      await assertEquivalent(template, recipient(ADA, vars));
    });
  }
});

void describe('compiled messages equal MailComposer: addresses and headers', () => {
  const names: [string, string][] = [
    ['accented display name', 'Zoë Ångström'],
    ['CJK display name', '山田 太郎'],
    ['emoji display name', 'Ada 🚀 Lovelace'],
    ['display name with specials', 'Doe, John "JD" (CEO)'],
    ['long display name that must fold', `${'Very Long Name '.repeat(12)}End`],
  ];
  for (const [title, name] of names) {
    void it(title, async () => {
      await assertEquivalent(
        {
          from: { name, address: 'sender@example.com' },
          replyTo: { name, address: 'reply@example.com' },
          subject: 'Hi',
          text: 'x',
        },
        recipient({ name, address: 'rcpt@example.org' }),
      );
    });
  }

  void it('recipient without a display name, IDN domain as punycode', async () => {
    const { compiled } = await assertEquivalent(
      { from: 'news@bücher.example', subject: 'Hi', text: 'x' },
      recipient('reader@bücher.example'),
    );
    const raw = compiled.toString('latin1');
    assert.match(raw, /\r\nTo: reader@xn--bcher-kva\.example\r\n/);
    assert.match(raw, /^From: news@xn--bcher-kva\.example\r\n/);
  });

  void it('long and non-ASCII extra headers fold and encode', async () => {
    await assertEquivalent(
      {
        from: FROM,
        subject: 'Hi',
        text: 'x',
        headers: {
          'X-Long': 'word '.repeat(150).trim(),
          'X-Unicode': 'Grüße aus Köln, 東京 and 🎉',
          'In-Reply-To': '<parent@example.org>',
          References: '<a@example.org> <b@example.org>',
          Precedence: 'bulk',
        },
      },
      recipient(
        ADA,
        {},
        {
          'List-Unsubscribe': `<https://news.example.test/unsubscribe/${'t'.repeat(150)}>, <mailto:u@news.example.test>`,
          'X-Recipient-Token': 'r-1',
        },
      ),
    );
  });
});

void describe('deliberate differences from MailComposer', () => {
  void it('a valid encoded-word typed into a subject stays literal text (MailComposer lets readers decode it)', async () => {
    const template: MessageTemplate = { from: FROM, subject: 'Literal =?UTF-8?B?SGk=?= {{name}}', text: 'x' };
    const fields = recipient(ADA, { name: 'x' });
    const ours = await simpleParser(compileTemplate(template).render(fields));
    const theirs = await simpleParser(await composeConcrete(template, fields));
    assert.equal(ours.subject, 'Literal =?UTF-8?B?SGk=?= x');
    assert.equal(theirs.subject, 'Literal Hi x');
  });

  void it('a lone CR in a body is a line break (MailComposer sends it as a bare CR)', async () => {
    const template: MessageTemplate = { from: FROM, subject: 'CR', text: 'one\rtwo\r{{name}}' };
    const fields = recipient(ADA, { name: 'three\rfour' });
    const compiled = compileTemplate(template).render(fields);
    assertRawInvariants(compiled);
    assert.equal((await simpleParser(compiled)).text, 'one\ntwo\nthree\nfour\n');
    assert.equal(
      (await simpleParser(await composeConcrete(template, fields))).text,
      'one\rtwo\rthree\rfour\n',
    );
  });
});

void describe('merge variables', () => {
  void it('a <script> value is escaped in html and literal in text and subject', async () => {
    const vars = { name: '<script>alert("x")</script>' };
    const { parsed } = await assertEquivalent(NEWSLETTER, recipient(ADA, vars));
    const html = parsed.html === false ? '' : (parsed.html ?? '');
    assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'), html);
    assert.ok(!html.includes('<script>'));
    assert.ok(parsed.text?.includes('<script>alert("x")</script>'));
    assert.equal(parsed.subject, '<script>alert("x")</script>, your Mailroom Weekly is here');
  });

  void it('values with line breaks and dots keep them in the bodies', async () => {
    const vars = { name: 'Ada\r\n.\r\nLovelace\n.', unsubscribeUrl: 'https://news.example.test/u/1' };
    const { parsed } = await assertEquivalent({ ...NEWSLETTER, subject: 'Weekly' }, recipient(ADA, vars));
    assert.match(parsed.text ?? '', /^Hello Ada\n\.\nLovelace\n\.,\n/);
  });
});
