// What a compiled template does per recipient: merge fields, escaping, what stays fixed, compileMessage.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { parseMessage } from '@mailroom/core';
import { compileMessage, compileTemplate, type MessageTemplate } from '@mailroom/mime';
import { composeMessage } from '@mailroom/smtp';
import { assertRawInvariants, DATE, declaredBoundaries, recipient } from './mime-oracle.js';

const FROM = 'News <news@example.com>';

void describe('mergeFields', () => {
  void it('lists root variables of subject, text and html, sorted, without helpers or loop-relative paths', () => {
    const compiled = compileTemplate({
      from: FROM,
      subject: '{{name}} {{#if vip}}★{{/if}}',
      text: '{{#each items}}{{title}} {{../currency}} {{@index}} {{this}}{{/each}} {{user.city}} {{lookup prices sku}}',
      html: '{{#with account}}{{plan}} {{../name}}{{/with}}{{#each rows as |row|}}{{row.id}}{{/each}}{{@root.footer}}{{{raw}}}',
    });
    assert.deepEqual(compiled.mergeFields, [
      'account',
      'currency',
      'footer',
      'items',
      'name',
      'prices',
      'raw',
      'rows',
      'sku',
      'user.city',
      'vip',
    ]);
  });

  void it('is empty for a template without merge fields', () => {
    assert.deepEqual(
      compileTemplate({ from: FROM, subject: 'Hi', text: 'Plain \\{{not a field}}' }).mergeFields,
      [],
    );
  });
});

void describe('render', () => {
  const template: MessageTemplate = {
    from: FROM,
    subject: 'News for {{name}}',
    text: 'Hello {{name}}',
    html: '<p>Hello {{name}}</p><p>Static footer</p>',
    attachments: [{ filename: 'a.bin', content: Buffer.from([0, 1, 2, 250]).toString('base64') }],
  };

  void it('HTML-escapes {{x}} in html only; {{{x}}} stays raw', async () => {
    const compiled = compileTemplate({ ...template, html: '<p>{{name}}</p><div>{{{snippet}}}</div>' });
    const parsed = await simpleParser(
      compiled.render(recipient('a@example.org', { name: 'A & B <i>', snippet: '<b>bold</b>' })),
    );
    assert.equal(parsed.html, '<p>A &amp; B &lt;i&gt;</p><div><b>bold</b></div>');
    assert.equal(parsed.text, 'Hello A & B <i>');
    assert.equal(parsed.subject, 'News for A & B <i>');
  });

  void it('missing variables render empty (strict: false)', async () => {
    const parsed = await simpleParser(compileTemplate(template).render(recipient('a@example.org', {})));
    assert.equal(parsed.subject, 'News for');
    assert.equal(parsed.text, 'Hello ');
  });

  void it('two recipients share boundaries and fixed parts and differ only where they should', () => {
    const compiled = compileTemplate(template);
    const first = compiled.render(recipient('Ada <ada@example.org>', { name: 'Ada' })).toString('latin1');
    const second = compiled.render(recipient('Bob <bob@example.org>', { name: 'Bob' })).toString('latin1');
    assert.deepEqual(declaredBoundaries(first), declaredBoundaries(second));
    assert.equal(declaredBoundaries(first).length, 2);
    assert.notEqual(first, second);
    assert.equal(first.replaceAll('Ada', 'Bob').replaceAll('ada@', 'bob@'), second);
  });

  void it('writes each header once, recipient fields in place, MIME headers last', () => {
    const compiled = compileTemplate({
      ...template,
      replyTo: 'help@example.com',
      headers: { 'X-Campaign': 'c1' },
    });
    const raw = compiled
      .render(
        recipient('Ada <ada@example.org>', { name: 'Ada' }, { 'List-Unsubscribe': '<https://e.example/u>' }),
      )
      .toString('latin1');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
    const names = head.split('\r\n').map((line) => line.slice(0, line.indexOf(':')));
    assert.deepEqual(names, [
      'From',
      'Reply-To',
      'To',
      'Subject',
      'Message-ID',
      'Date',
      'X-Campaign',
      'List-Unsubscribe',
      'MIME-Version',
      'Content-Type',
    ]);
    assert.match(head, /\r\nTo: Ada <ada@example\.org>\r\nSubject: News for Ada\r\n/);
    assert.match(head, /\r\nDate: Tue, 04 Mar 2025 10:05:06 \+0000\r\n/);
  });

  void it('templates get different boundaries', () => {
    const a = compileTemplate(template).render(recipient('a@example.org'));
    const b = compileTemplate(template).render(recipient('a@example.org'));
    assert.notDeepEqual(declaredBoundaries(a.toString('latin1')), declaredBoundaries(b.toString('latin1')));
  });

  void it('holds the raw invariants for 300 recipients with awkward variables', async () => {
    // The subject is fixed here so that values with line breaks reach the bodies.
    const compiled = compileTemplate({ ...template, subject: 'News' });
    const values = [
      'Zoë',
      '山田',
      '🎉',
      'x'.repeat(900),
      'a\r\nb',
      '.',
      '..',
      'line\n.\n',
      '=_',
      '----=_Mailroom',
      ' ',
      '',
    ];
    for (let i = 0; i < 300; i++) {
      const name = `${values[i % values.length] ?? ''}${values[(i * 7) % values.length] ?? ''}`;
      const message = compiled.render(recipient('r@example.org', { name }));
      assertRawInvariants(message);
      if (i % 25 === 0) {
        const parsed = await simpleParser(message);
        assert.equal(parsed.text, `Hello ${name}`.replace(/\r\n/g, '\n'));
      }
    }
  });
});

void describe('compileMessage', () => {
  void it('writes one Message equal to composeMessage, with literal braces', async () => {
    const message = parseMessage({
      from: 'Shop <shop@example.com>',
      to: { name: 'Zoë', address: 'zoe@example.org' },
      replyTo: 'help@example.com',
      subject: 'Receipt {{not a template}} – ünïcode',
      text: 'Total: {{42}}\n.\n',
      html: '<p>{{ literal }}</p>',
      headers: { 'X-Order': '1234' },
      attachments: [
        {
          filename: 'r.pdf',
          contentType: 'application/pdf',
          content: Buffer.from('%PDF').toString('base64'),
        },
      ],
    });
    const messageId = '<01jnmr6k7a0000000000000001@example.com>';
    const compiled = compileMessage(message, { messageId, date: DATE });
    assertRawInvariants(compiled);
    const concrete = await composeMessage({
      ...message,
      attachments: message.attachments.map((a) => ({ ...a, content: Buffer.from(a.content, 'base64') })),
      messageIdHeader: messageId,
      date: DATE,
    });
    const [ours, theirs] = await Promise.all([simpleParser(compiled), simpleParser(concrete)]);
    assert.equal(ours.subject, 'Receipt {{not a template}} – ünïcode');
    assert.equal(ours.subject, theirs.subject);
    assert.equal(ours.text, theirs.text);
    assert.equal(ours.html, theirs.html);
    assert.equal(ours.messageId, messageId);
    assert.deepEqual(ours.attachments[0]?.content, theirs.attachments[0]?.content);
    assert.equal(ours.headers.get('x-order'), '1234');
  });

  void it('defaults the date to now', async () => {
    const message = parseMessage({ from: FROM, to: 'a@example.org', subject: 's', text: 't' });
    const before = Math.floor(Date.now() / 1000) * 1000;
    const parsed = await simpleParser(compileMessage(message, { messageId: '<x@example.com>' }));
    assert.ok((parsed.date?.getTime() ?? 0) >= before);
  });
});
