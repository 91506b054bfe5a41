import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfigError,
  DEFAULT_MAX_MESSAGE_BYTES,
  estimateMessageBytes,
  isAllowedHeaderName,
  messageInputSchema,
  parseMessage,
  ValidationError,
  type FieldIssue,
  type MessageInput,
} from '@mailroom/core';

const base: MessageInput = {
  from: 'Sender <sender@example.com>',
  to: 'rcpt@example.org',
  subject: 'Hello',
  text: 'Hi there',
};

function with_(changes: Record<string, unknown>): Record<string, unknown> {
  return { ...base, ...changes };
}

function issuesOf(input: unknown, options?: { maxMessageBytes?: number }): readonly FieldIssue[] {
  try {
    parseMessage(input, options);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `ValidationError expected, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('expected the message to be refused');
}

/** Asserts the input is refused with an issue on `field` whose message matches `reason`. */
function refuses(input: unknown, field: string, reason: RegExp): void {
  const issues = issuesOf(input);
  assert.ok(
    issues.some((issue) => issue.field === field && reason.test(issue.message)),
    `expected ${field}: ${String(reason)}, got ${JSON.stringify(issues)}`,
  );
}

const pdfBytes = Buffer.from('%PDF-1.4 fake but bytes are bytes\n');
const pdf = { filename: 'report.pdf', contentType: 'application/pdf', content: pdfBytes.toString('base64') };

void describe('parseMessage: accepted messages', () => {
  void it('returns the normalised model', () => {
    const message = parseMessage({
      ...base,
      replyTo: { name: 'Support', address: 'Support@Example.COM' },
      html: '<p>Hi</p>',
      headers: { 'X-Campaign': 'spring-2025', 'List-Unsubscribe': '<https://example.com/u/1>' },
      attachments: [
        pdf,
        { filename: 'logo.png', contentType: 'Image/PNG', content: 'iVBORw==', contentId: 'logo@mailroom' },
      ],
      tags: ['newsletter', 'tenant:42'],
    });
    assert.deepEqual(message, {
      from: { name: 'Sender', address: 'sender@example.com' },
      to: { address: 'rcpt@example.org' },
      replyTo: { name: 'Support', address: 'Support@example.com' },
      subject: 'Hello',
      text: 'Hi there',
      html: '<p>Hi</p>',
      headers: [
        ['X-Campaign', 'spring-2025'],
        ['List-Unsubscribe', '<https://example.com/u/1>'],
      ],
      attachments: [
        {
          filename: 'report.pdf',
          contentType: 'application/pdf',
          content: pdf.content,
          size: pdfBytes.length,
        },
        {
          filename: 'logo.png',
          contentType: 'image/png',
          content: 'iVBORw==',
          contentId: 'logo@mailroom',
          size: 4,
        },
      ],
      tags: ['newsletter', 'tenant:42'],
    });
  });

  void it('defaults: no headers, attachments or tags; attachment type application/octet-stream', () => {
    const message = parseMessage({ ...base, attachments: [{ filename: 'a.bin', content: 'AAEC' }] });
    assert.deepEqual(message.headers, []);
    assert.deepEqual(message.tags, []);
    assert.equal(message.attachments[0]?.contentType, 'application/octet-stream');
    assert.equal(message.attachments[0]?.size, 3);
    assert.equal(message.replyTo, undefined);
  });

  void it('html alone is a body; bodies may contain CR and LF', () => {
    const message = parseMessage({
      from: base.from,
      to: base.to,
      subject: 's',
      html: '<p>a</p>\r\n<p>b</p>\n',
    });
    assert.equal(message.html, '<p>a</p>\r\n<p>b</p>\n');
    assert.equal(message.text, undefined);
  });

  void it('messageInputSchema is the zod schema behind it', () => {
    const result = messageInputSchema.safeParse(base);
    assert.ok(result.success);
    assert.equal(result.data.to.address, 'rcpt@example.org');
    assert.equal(messageInputSchema.safeParse({ ...base, cc: 'x@example.com' }).success, false);
  });
});

void describe('parseMessage: rules', () => {
  void it('input must be an object', () => {
    for (const bad of [null, 'a message', 42, []]) refuses(bad, '(message)', /must be an object/);
  });

  void it('from, to and subject are required', () => {
    const issues = issuesOf({ text: 'x' });
    assert.deepEqual(issues.map((i) => `${i.field}: ${i.message}`).sort(), [
      'from: is required',
      'subject: is required',
      'to: is required',
    ]);
  });

  void it('exactly one recipient: arrays and comma lists are refused naming to', () => {
    refuses(with_({ to: ['a@example.org', 'b@example.org'] }), 'to', /single mailbox, not a list/);
    refuses(with_({ to: 'a@example.org, b@example.org' }), 'to', /not a list/);
  });

  void it('address problems are named by field, including from.name and replyTo', () => {
    refuses(with_({ from: 'Evil\r\nBcc: x@example.com <a@example.com>' }), 'from', /U\+000D/);
    refuses(
      with_({ from: { name: 'Evil\nBcc: x@example.com', address: 'a@example.com' } }),
      'from.name',
      /U\+000A/,
    );
    refuses(with_({ replyTo: 'nobody@localhost' }), 'replyTo', /two labels/);
    refuses(with_({ to: `${'a'.repeat(65)}@example.org` }), 'to', /local part is longer than 64 octets/);
  });

  void it('unknown keys are refused by name: cc, bcc, raw, envelope', () => {
    const issues = issuesOf(
      with_({ cc: 'c@example.com', bcc: 'b@example.com', raw: 'From: x', envelope: {} }),
    );
    assert.deepEqual(issues.map((i) => i.field).sort(), ['bcc', 'cc', 'envelope', 'raw']);
    assert.match(issues.find((i) => i.field === 'raw')?.message ?? '', /not accepted/);
    assert.match(issues.find((i) => i.field === 'cc')?.message ?? '', /exactly one recipient/);
    refuses(with_({ priority: 'high' }), 'priority', /not a recognised field/);
  });

  void it('attachments by path or URL are refused: attachments[0].path, attachments[1].href', () => {
    const issues = issuesOf(
      with_({
        attachments: [
          { filename: 'passwd', path: '/etc/passwd', content: 'AAAA' },
          { filename: 'x', href: 'http://169.254.169.254/latest/meta-data', content: 'AAAA' },
        ],
      }),
    );
    assert.deepEqual(
      issues.map((i) => i.field),
      ['attachments[0].path', 'attachments[1].href'],
    );
    assert.ok(issues.every((i) => /base64 "content" only/.test(i.message)));
  });

  void it('subject: required, non-empty, at most 998 characters, no control characters', () => {
    refuses(with_({ subject: '' }), 'subject', /is empty/);
    refuses(with_({ subject: 5 }), 'subject', /must be a string/);
    refuses(with_({ subject: 's'.repeat(999) }), 'subject', /longer than 998 characters \(999\)/);
    assert.equal(parseMessage(with_({ subject: 's'.repeat(998) })).subject.length, 998);
  });

  void it('subject header injection: CR, LF, NUL, TAB, DEL, C1, U+2028, U+2029', () => {
    for (const [char, name] of [
      ['\r', 'U+000D'],
      ['\n', 'U+000A'],
      ['\0', 'U+0000'],
      ['\t', 'U+0009'],
      ['\x7f', 'U+007F'],
      ['\x9b', 'U+009B'],
      ['\u2028', 'U+2028'],
      ['\u2029', 'U+2029'],
    ] as const) {
      refuses(
        with_({ subject: `Hi${char}Bcc: victim@example.com` }),
        'subject',
        new RegExp(`\\(${name.replace('+', '\\+')}\\)`),
      );
    }
  });

  void it('a body is required: text, html or both', () => {
    refuses({ from: base.from, to: base.to, subject: 's' }, '(message)', /no body/);
    refuses({ from: base.from, to: base.to, subject: 's', text: '', html: '' }, '(message)', /no body/);
  });

  void it('bodies may not contain NUL', () => {
    refuses(with_({ text: 'a\0b' }), 'text', /NUL/);
    refuses(with_({ html: '<p>\0</p>' }), 'html', /NUL/);
    refuses(with_({ text: 7 }), 'text', /must be a string/);
  });

  void it('extra headers: X- names and the allowlist pass, structural names are refused', () => {
    const allowed = [
      'X-Campaign',
      'x-lower',
      'In-Reply-To',
      'References',
      'List-Id',
      'List-Unsubscribe-Post',
      'Precedence',
      'Auto-Submitted',
      'Importance',
      'Priority',
      'Keywords',
      'Comments',
    ];
    for (const name of allowed) assert.ok(isAllowedHeaderName(name), name);
    const structural = [
      'From',
      'to',
      'Cc',
      'BCC',
      'Sender',
      'Reply-To',
      'Subject',
      'Date',
      'Message-ID',
      'MIME-Version',
      'Content-Type',
      'Content-Transfer-Encoding',
      'Received',
      'Return-Path',
      'DKIM-Signature',
      'ARC-Seal',
      'Authentication-Results',
    ];
    for (const name of structural) {
      assert.equal(isAllowedHeaderName(name), false, name);
      refuses(with_({ headers: { [name]: 'v' } }), `headers.${name}`, /set by Mailroom/);
    }
    for (const name of ['Organization', 'Disposition-Notification-To', 'X-']) {
      assert.equal(isAllowedHeaderName(name), false, name);
      refuses(with_({ headers: { [name]: 'v' } }), `headers.${name}`, /not an allowed extra header/);
    }
  });

  void it('extra header names must be RFC 5322 field-names: header injection through the name', () => {
    for (const name of ['X-A: b\r\nBcc', 'X-A\nBcc', 'X A', 'X-Ä', 'X-A:']) {
      refuses(with_({ headers: { [name]: 'v' } }), `headers.${name}`, /field-name/);
      assert.equal(isAllowedHeaderName(name), false);
    }
    refuses(with_({ headers: { ['__proto__']: 'v' } }), 'headers.__proto__', /not an allowed extra header/);
    refuses(
      JSON.parse('{"headers": {"__proto__": "v"}}') as unknown,
      'headers.__proto__',
      /not an allowed extra header/,
    );
  });

  void it('extra header values: no control characters (CRLF injection), at most 998 characters', () => {
    refuses(
      with_({ headers: { 'X-Campaign': 'a\r\nBcc: victim@example.com' } }),
      'headers.X-Campaign',
      /U\+000D/,
    );
    refuses(
      with_({ headers: { 'List-Unsubscribe': '<https://x.example>\u2028Bcc: v@x.example' } }),
      'headers.List-Unsubscribe',
      /U\+2028/,
    );
    refuses(with_({ headers: { 'X-Campaign': 'v'.repeat(999) } }), 'headers.X-Campaign', /longer than 998/);
    refuses(with_({ headers: { 'X-Campaign': 5 } }), 'headers.X-Campaign', /must be a string/);
    refuses(with_({ headers: ['X-Campaign: a'] }), 'headers', /must be an object/);
  });

  void it('extra header names are case-insensitive: duplicates are refused; case is kept', () => {
    refuses(with_({ headers: { 'X-Tag': 'a', 'x-tag': 'b' } }), 'headers.x-tag', /given twice/);
    assert.deepEqual(parseMessage(with_({ headers: { 'x-CaMeL': 'v' } })).headers, [['x-CaMeL', 'v']]);
  });

  void it('at most 50 extra headers and 100 attachments', () => {
    const headers = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`X-H${i}`, 'v']));
    refuses(with_({ headers }), 'headers', /51 headers, more than the limit of 50/);
    assert.equal(
      parseMessage(with_({ headers: Object.fromEntries(Object.entries(headers).slice(0, 50)) })).headers
        .length,
      50,
    );
    const attachments = Array.from({ length: 101 }, (_, i) => ({ filename: `f${i}.txt`, content: 'YQ==' }));
    refuses(with_({ attachments }), 'attachments', /more than 100 attachments/);
    assert.equal(parseMessage(with_({ attachments: attachments.slice(0, 100) })).attachments.length, 100);
  });

  void it('attachment content must be strict, canonical base64', () => {
    const cases: [string, RegExp][] = [
      ['data:text/plain;base64,aGVsbG8=', /data: URL/],
      ['https://example.com/file.pdf', /not a URL/],
      ['aGVs\nbG8=', /whitespace/],
      ['aGVs bG8=', /whitespace/],
      ['aGVsbG8', /length or padding/],
      ['aGVsbG8==', /length or padding/],
      ['aGVsbG=8', /characters that are not base64|"=" before the end/],
      ['aGV*bG8=', /characters that are not base64/],
      ['aGVsbG9-', /URL-safe/],
      ['aGVsbG9=', /not canonical/],
    ];
    for (const [content, reason] of cases) {
      refuses(with_({ attachments: [{ filename: 'a.txt', content }] }), 'attachments[0].content', reason);
    }
    refuses(with_({ attachments: [{ filename: 'a.txt' }] }), 'attachments[0].content', /is required/);
  });

  void it('attachment filenames: 1-255 characters, no control characters or path separators', () => {
    const cases: [unknown, RegExp][] = [
      ['', /is empty/],
      ['n'.repeat(256), /longer than 255/],
      ['../../etc/passwd', /path separator/],
      ['C:\\Windows\\x.dll', /path separator/],
      ['a\r\nContent-Type: text/html', /U\+000D/],
      ['..', /not a file name/],
      [7, /must be a string/],
    ];
    for (const [filename, reason] of cases) {
      refuses(with_({ attachments: [pdf, { ...pdf, filename }] }), 'attachments[1].filename', reason);
    }
    assert.equal(
      parseMessage(with_({ attachments: [{ ...pdf, filename: 'Rapport d’été.pdf' }] })).attachments[0]
        ?.filename,
      'Rapport d’été.pdf',
    );
  });

  void it('attachment contentType is type/subtype token syntax; contentId is a token', () => {
    for (const contentType of ['pdf', 'text/plain; charset=utf-8', 'text/html\r\nX: y', 'a/b/c', '/x']) {
      refuses(
        with_({ attachments: [{ ...pdf, contentType }] }),
        'attachments[0].contentType',
        /type\/subtype/,
      );
    }
    for (const contentId of ['<logo@x>', 'a b', 'a\r\nb', '']) {
      refuses(
        with_({ attachments: [{ ...pdf, contentId }] }),
        'attachments[0].contentId',
        /1-250 characters/,
      );
    }
  });

  void it('tags: at most 20, each /^[A-Za-z0-9_.:-]{1,64}$/', () => {
    refuses(with_({ tags: ['ok', 'fine', 'not ok'] }), 'tags[2]', /1-64 characters/);
    refuses(with_({ tags: ['t'.repeat(65)] }), 'tags[0]', /1-64 characters/);
    refuses(with_({ tags: [''] }), 'tags[0]', /1-64 characters/);
    refuses(with_({ tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }), 'tags', /more than 20 tags/);
    refuses(with_({ tags: 'one' }), 'tags', /must be an array/);
    assert.equal(
      parseMessage(with_({ tags: Array.from({ length: 20 }, (_, i) => `t.${i}:x-y_z`) })).tags.length,
      20,
    );
  });

  void it('every issue is reported at once', () => {
    const issues = issuesOf({
      from: 'not an address',
      to: ['a@example.org', 'b@example.org'],
      subject: 'a\nb',
      headers: { From: 'x@example.com', 'X-Ok': 'a\rb' },
      attachments: [{ filename: 'x/y', content: 'data:,x', path: '/etc/passwd' }],
      tags: ['bad tag'],
      raw: 'x',
    });
    assert.deepEqual(issues.map((i) => i.field).sort(), [
      '(message)',
      'attachments[0].content',
      'attachments[0].filename',
      'attachments[0].path',
      'from',
      'headers.From',
      'headers.X-Ok',
      'raw',
      'subject',
      'tags[0]',
      'to',
    ]);
    const message = (() => {
      try {
        parseMessage({ subject: 'a\nb', text: 'x', from: 'a@example.com', to: 'b@example.com', raw: 1 });
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    assert.equal(
      message,
      'invalid message: subject: contains a control character (U+000A); raw: is not accepted: Mailroom composes every message from its fields',
    );
  });
});

void describe('parseMessage: size limit', () => {
  void it('refuses a message over the limit with its size and the limit', () => {
    const content = Buffer.alloc(8 * 1024 * 1024, 7).toString('base64'); // 8 MiB decoded, ~10.8 MiB encoded
    const issues = issuesOf(with_({ attachments: [{ filename: 'big.bin', content }] }));
    assert.equal(issues.length, 1);
    assert.equal(issues[0]?.field, '(message)');
    const match = /is about (\d+) bytes as encoded MIME, over the limit of (\d+) bytes/.exec(
      issues[0]?.message ?? '',
    );
    assert.ok(match, issues[0]?.message);
    assert.ok(Number(match[1]) > DEFAULT_MAX_MESSAGE_BYTES);
    assert.equal(Number(match[2]), DEFAULT_MAX_MESSAGE_BYTES);
  });

  void it('honours maxMessageBytes and accepts a message just under it', () => {
    const message = parseMessage(with_({ text: 'x'.repeat(10_000) }));
    const size = estimateMessageBytes(message);
    assert.ok(size > 10_000);
    assert.equal(
      parseMessage(with_({ text: 'x'.repeat(10_000) }), { maxMessageBytes: size }).text?.length,
      10_000,
    );
    const issues = issuesOf(with_({ text: 'x'.repeat(10_000) }), { maxMessageBytes: size - 1 });
    assert.match(
      issues[0]?.message ?? '',
      new RegExp(`is about ${size} bytes .* limit of ${size - 1} bytes`),
    );
  });

  void it('reports the size together with other issues when the message does not parse', () => {
    const issues = issuesOf(with_({ subject: 'a\nb', text: 'x'.repeat(2000) }), { maxMessageBytes: 1000 });
    assert.deepEqual(
      issues.map((i) => i.field),
      ['subject', '(message)'],
    );
    assert.match(issues[1]?.message ?? '', /is at least 2000 bytes .* limit of 1000 bytes/);
  });

  void it('estimates conservatively: base64 growth for attachments, QP worst case for non-ASCII bodies', () => {
    const small = estimateMessageBytes(parseMessage(base));
    const attachment = estimateMessageBytes(
      parseMessage(
        with_({ attachments: [{ filename: 'a', content: Buffer.alloc(300_000).toString('base64') }] }),
      ),
    );
    assert.ok(
      attachment - small >= (300_000 * 4) / 3 + (400_000 / 76) * 2,
      'base64 with CRLF every 76 characters',
    );
    const accented = estimateMessageBytes(parseMessage(with_({ text: 'é'.repeat(100_000) })));
    assert.ok(accented - small >= 100_000 * 2 * 3, 'every UTF-8 byte of a non-ASCII body as =XX');
    const ascii = estimateMessageBytes(parseMessage(with_({ text: 'a'.repeat(100_000) })));
    assert.ok(ascii - small >= (100_000 * 4) / 3, 'never below base64 size');
  });

  void it('refuses a bad maxMessageBytes option as a configuration error', () => {
    assert.throws(() => parseMessage(base, { maxMessageBytes: 0 }), ConfigError);
    assert.throws(() => parseMessage(base, { maxMessageBytes: Number.NaN }), ConfigError);
  });
});
