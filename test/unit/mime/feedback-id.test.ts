// Gmail's Feedback-ID on campaign messages: its value, and where compileTemplate puts it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseMailbox } from '@mailroom/core';
import { FEEDBACK_ID_SENDER_ID, compileTemplate, feedbackIdValue } from '@mailroom/mime';

const RENDER = {
  to: parseMailbox('reader@example.org', 'to'),
  messageId: '<01jabcdefghjkmnpqrstvwxyz0@news.example.com>',
  date: new Date('2026-03-01T12:00:00Z'),
  vars: { name: 'Ada' },
};

void describe('feedbackIdValue', () => {
  void it('is campaign:tag:sender domain:SenderId, with a SenderId of 5 to 15 characters', () => {
    assert.equal(
      feedbackIdValue({ campaign: '01jcampaign', tag: 'spring', senderDomain: 'News.Example.COM' }),
      '01jcampaign:spring:news.example.com:mailroom',
    );
    assert.ok(FEEDBACK_ID_SENDER_ID.length >= 5 && FEEDBACK_ID_SENDER_ID.length <= 15);
    assert.equal(
      feedbackIdValue({ campaign: 'c1', senderDomain: 'example.com' }),
      'c1:campaign:example.com:mailroom',
      'without a tag, "campaign" holds its place',
    );
  });

  void it('keeps the four fields apart: a tag with colons or spaces cannot add a field', () => {
    const value = feedbackIdValue({ campaign: 'c1', tag: 'news:2026 spring', senderDomain: 'example.com' });
    assert.equal(value, 'c1:news-2026-spring:example.com:mailroom');
    assert.equal(value.split(':').length, 4);
    assert.equal(
      feedbackIdValue({ campaign: 'c1', tag: ':::', senderDomain: 'example.com' }).split(':').length,
      4,
    );
  });

  void it('refuses an empty campaign or domain with ConfigError', () => {
    assert.throws(
      () => feedbackIdValue({ campaign: '', senderDomain: '' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.issues.map((i) => i.field).join() === 'feedbackId.campaign,feedbackId.senderDomain',
    );
  });
});

void describe('compileTemplate with feedbackId', () => {
  const template = { from: 'News <news@News.Example.com>', subject: 'Hi {{name}}', text: 'Hello {{name}}\n' };

  void it('adds one Feedback-ID line to every message, the sender domain from the template From', () => {
    const raw = compileTemplate(template, { feedbackId: { campaign: 'c42', tag: 'weekly' } })
      .render(RENDER)
      .toString('latin1');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n') + 2);
    const lines = head.split('\r\n').filter((l) => /^feedback-id:/i.test(l));
    assert.deepEqual(lines, ['Feedback-ID: c42:weekly:news.example.com:mailroom']);
  });

  void it('adds nothing without the option, and a recipient header cannot add a second one', () => {
    const plain = compileTemplate(template).render(RENDER).toString('latin1');
    assert.ok(!/^feedback-id:/im.test(plain));
    const compiled = compileTemplate(template, { feedbackId: { campaign: 'c42' } });
    assert.throws(() => compiled.render({ ...RENDER, headers: { 'Feedback-ID': 'x:y:z:other' } }));
  });
});
