// Template and per-recipient validation: every refusal is a ValidationError naming the field, and merge
// variables can never add a header line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfigError,
  ValidationError,
  WHOLE_MESSAGE_FIELD,
  type FieldIssue,
  type Mailbox,
} from '@mailroom/core';
import { compileTemplate, parseTemplate, type MessageTemplate, type RecipientFields } from '@mailroom/mime';
import { recipient } from './mime-oracle.js';

const BASE: MessageTemplate = {
  from: 'News <news@example.com>',
  subject: 'Hello {{name}}',
  text: 'Hi {{name}}',
  html: '<p>Hi {{name}}</p>',
};

function issuesOf(action: () => unknown): readonly FieldIssue[] {
  try {
    action();
  } catch (err) {
    assert.ok(err instanceof ValidationError, `ValidationError expected, got ${String(err)}`);
    assert.equal(err.code, 'ERR_VALIDATION');
    return err.issues;
  }
  assert.fail('expected a ValidationError');
}

function assertIssue(issues: readonly FieldIssue[], field: string, reason: RegExp): void {
  assert.ok(
    issues.some((issue) => issue.field === field && reason.test(issue.message)),
    `expected ${field}: ${String(reason)}, got ${JSON.stringify(issues)}`,
  );
}

const compileIssues = (template: unknown, options?: { maxMessageBytes?: number }) =>
  issuesOf(() => compileTemplate(template, options));

void describe('compileTemplate: template errors name the field', () => {
  const cases: [string, unknown, string, RegExp][] = [
    ['not an object', 'hello', WHOLE_MESSAGE_FIELD, /must be an object/],
    ['missing from', { subject: 's', text: 't' }, 'from', /is required/],
    ['bad from address', { ...BASE, from: 'not-an-address' }, 'from', /@domain/],
    ['bad replyTo', { ...BASE, replyTo: 'a@b' }, 'replyTo', /domain/],
    ['no body', { from: BASE.from, subject: 's' }, WHOLE_MESSAGE_FIELD, /no body/],
    ['recipient in the template', { ...BASE, to: 'a@example.org' }, 'to', /per recipient/],
    ['tags in the template', { ...BASE, tags: ['x'] }, 'tags', /job/],
    ['cc', { ...BASE, cc: 'a@example.org' }, 'cc', /one recipient/],
    ['unknown key', { ...BASE, colour: 'red' }, 'colour', /not a recognised field/],
    ['CRLF in the subject template', { ...BASE, subject: 'Hi\r\nBcc: x@evil.example' }, 'subject', /U\+000D/],
    [
      'structural extra header',
      { ...BASE, headers: { Bcc: 'x@evil.example' } },
      'headers.Bcc',
      /set by Mailroom/,
    ],
    ['non-allowlisted header', { ...BASE, headers: { Foo: '1' } }, 'headers.Foo', /not an allowed/],
    ['header value with LF', { ...BASE, headers: { 'X-A': 'a\nb' } }, 'headers.X-A', /U\+000A/],
    [
      'attachment path',
      { ...BASE, attachments: [{ filename: 'a', path: '/etc/passwd', content: '' }] },
      'attachments[0].path',
      /never files/,
    ],
    [
      'attachment not base64',
      { ...BASE, attachments: [{ filename: 'a.bin', content: 'not base64!' }] },
      'attachments[0].content',
      /base64/,
    ],
    [
      'subject syntax error',
      { ...BASE, subject: 'Hi {{name' },
      'subject',
      /not a valid template.*Parse error/,
    ],
    ['text syntax error', { ...BASE, text: '{{#if x}}open' }, 'text', /not a valid template/],
    ['html syntax error', { ...BASE, html: '<p>{{/each}}</p>' }, 'html', /not a valid template/],
    ['unknown helper', { ...BASE, html: '{{shout name}}' }, 'html', /unknown helper shout/],
    ['the log helper', { ...BASE, text: '{{log name}}' }, 'text', /unknown helper log/],
    ['a partial', { ...BASE, text: 'x {{> footer}}' }, 'text', /partial/],
    [
      'structured header too long for a line',
      { ...BASE, headers: { 'List-Archive': `<https://example.com/${'a'.repeat(976)}>` } },
      'headers.List-Archive',
      /too long for one header line/,
    ],
    [
      'message/rfc822 attachment with bare LF',
      {
        ...BASE,
        attachments: [
          {
            filename: 'm.eml',
            contentType: 'message/rfc822',
            content: Buffer.from('A: b\nc').toString('base64'),
          },
        ],
      },
      'attachments[0].content',
      /7-bit text with CRLF/,
    ],
  ];
  for (const [title, template, field, reason] of cases) {
    void it(title, () => assertIssue(compileIssues(template), field, reason));
  }

  void it('reports template syntax together with other problems', () => {
    const issues = compileIssues({ ...BASE, from: 'nope', subject: '{{', html: '{{#each}}' });
    assertIssue(issues, 'from', /./);
    assertIssue(issues, 'subject', /not a valid template/);
    assertIssue(issues, 'html', /not a valid template/);
  });

  void it('an own __proto__ key is refused as a field, never used as a prototype', () => {
    const template = JSON.parse(
      '{"from":"a@example.com","subject":"s","text":"t","__proto__":{"to":"x@example.org"}}',
    ) as unknown;
    assertIssue(compileIssues(template), '__proto__', /not a recognised field/);
  });

  void it('a template larger than maxMessageBytes is refused', () => {
    assertIssue(
      compileIssues({ ...BASE, text: 'x'.repeat(5000) }, { maxMessageBytes: 4000 }),
      WHOLE_MESSAGE_FIELD,
      /over the limit/,
    );
  });

  void it('a bad maxMessageBytes is a ConfigError', () => {
    assert.throws(() => compileTemplate(BASE, { maxMessageBytes: 0 }), ConfigError);
    assert.throws(() => compileTemplate(BASE, { maxMessageBytes: 1.5 }), ConfigError);
  });

  void it('parseTemplate returns the normalised model', () => {
    const model = parseTemplate({ ...BASE, from: 'News <News@Example.COM>', headers: { 'X-A': '1' } });
    assert.deepEqual(model.from, { name: 'News', address: 'News@example.com' });
    assert.deepEqual(model.headers, [['X-A', '1']]);
    assert.equal(model.subject, 'Hello {{name}}');
  });
});

void describe('render: merge variables and recipient fields cannot inject headers', () => {
  const compiled = compileTemplate(BASE);
  const renderIssues = (fields: RecipientFields) => issuesOf(() => compiled.render(fields));
  const ada = recipient('Ada <ada@example.org>', { name: 'Ada' });

  const injections = [
    'Hi\r\nBcc: victim@example.org',
    'Hi\nX-Evil: 1',
    'Hi\rX',
    'nul\0',
    'tab\there',
    'line\u2028sep',
    'del\u007f',
  ];
  for (const value of injections) {
    void it(`a subject variable ${JSON.stringify(value)} is refused naming subject`, () => {
      assertIssue(renderIssues({ ...ada, vars: { name: value } }), 'subject', /control character/);
    });
  }

  void it('a subject that renders empty or too long is refused', () => {
    const onlyName = compileTemplate({ ...BASE, subject: '{{name}}' });
    assertIssue(
      issuesOf(() => onlyName.render({ ...ada, vars: { name: '  ' } })),
      'subject',
      /is empty/,
    );
    assertIssue(
      issuesOf(() => onlyName.render({ ...ada, vars: { name: 'x'.repeat(999) } })),
      'subject',
      /longer than 998/,
    );
  });

  void it('a display name with CR/LF is refused naming to.name', () => {
    const to = { name: 'Ada\r\nBcc: victim@example.org', address: 'ada@example.org' } as Mailbox;
    assertIssue(renderIssues({ ...ada, to }), 'to.name', /U\+000D/);
  });

  void it('an unvalidated address is refused naming to.address', () => {
    for (const address of [
      'ada@example.org>\r\nBcc: x@y.example',
      'a <b@example.org>',
      'ada@exämple.org',
      'no-at',
    ]) {
      assertIssue(renderIssues({ ...ada, to: { address } }), 'to.address', /validated address/);
    }
  });

  void it('bad messageId and date are refused', () => {
    assertIssue(renderIssues({ ...ada, messageId: 'no-brackets@example.org' }), 'messageId', /<id@domain>/);
    assertIssue(renderIssues({ ...ada, messageId: '<a@b>\r\nX: y' }), 'messageId', /<id@domain>/);
    assertIssue(renderIssues({ ...ada, date: new Date('nope') }), 'date', /valid Date/);
  });

  void it('per-recipient headers follow the allowlist and cannot repeat template headers', () => {
    const withHeaders = compileTemplate({ ...BASE, headers: { 'List-Id': '<news.example.com>' } });
    const issues = issuesOf(() =>
      withHeaders.render({
        ...ada,
        headers: {
          Bcc: 'x@example.org',
          'List-Id': '<other.example.com>',
          'List-Unsubscribe': '<https://example.com/u>\r\nBcc: x@example.org',
          'X-Ok': 'fine',
          'x-ok': 'twice',
        },
      }),
    );
    assertIssue(issues, 'headers.Bcc', /set by Mailroom/);
    assertIssue(issues, 'headers.List-Id', /already set by the template/);
    assertIssue(issues, 'headers.List-Unsubscribe', /U\+000D/);
    assertIssue(issues, 'headers.x-ok', /given twice/);
    assert.ok(!issues.some((issue) => issue.field === 'headers.X-Ok'));
  });

  void it('a rendered message over maxMessageBytes is refused naming (message)', () => {
    const small = compileTemplate(BASE, { maxMessageBytes: 3000 });
    assert.ok(small.render(ada).length < 3000);
    assertIssue(
      issuesOf(() => small.render({ ...ada, vars: { name: 'x'.repeat(900) } })),
      WHOLE_MESSAGE_FIELD,
      /over the limit of 3000 bytes/,
    );
  });

  void it('a template that throws while rendering names its field', () => {
    const throwing = compileTemplate({ ...BASE, text: '{{#each items}}{{this}}{{/each}}' });
    const items = {
      get length(): number {
        throw new Error('boom');
      },
    };
    assertIssue(
      issuesOf(() => throwing.render({ ...ada, vars: { items } })),
      'text',
      /could not be rendered: boom/,
    );
  });
});
