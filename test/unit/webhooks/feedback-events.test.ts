// Which webhook event a report that came back after sending (or a one-click unsubscribe) gives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FeedbackInput, FeedbackRecording } from '@mailroom/queue';
import {
  feedbackWebhookEvent,
  toWebhookEvent,
  unsubscribeWebhookEvent,
  webhookEventSchema,
} from '@mailroom/webhooks';

const ID = '01jng7p3c0w5rfak3zrjv7awsx';
const hard: FeedbackInput = {
  kind: 'hard_bounce',
  mailroomId: ID,
  linkedBy: 'verp',
  recipient: 'absent.person@example.net',
  status: '5.1.1',
  replyCode: 550,
  diagnostic: '550 5.1.1 The email account that you tried to reach does not exist.',
  source: 'dsn:gmail',
};
const recorded: FeedbackRecording = {
  result: 'recorded',
  state: 'delivered',
  recipient: 'absent.person@example.net',
  attributedTo: { address: 'Absent.Person@example.net', recipientFrom: 'ledger' },
  messageIdHeader: `<${ID}@news.example.com>`,
  campaign: 'c42',
};

void describe('feedbackWebhookEvent', () => {
  void it('a hard bounce after delivery is `bounced`, with the id, campaign, status and the ledger recipient', () => {
    const event = feedbackWebhookEvent(hard, recorded);
    assert.deepEqual(event, {
      type: 'bounced',
      messageId: ID,
      messageIdHeader: `<${ID}@news.example.com>`,
      campaign: 'c42',
      recipient: 'Absent.Person@example.net',
      smtp: { code: 550, enhanced: '5.1.1', response: hard.diagnostic },
      reason: 'hard_bounce',
    });
    assert.ok(webhookEventSchema.safeParse(toWebhookEvent(event)).success);
    assert.equal(feedbackWebhookEvent({ ...hard, kind: 'soft_bounce' }, recorded)?.reason, 'soft_bounce');
  });

  void it('no second `bounced` for a message the worker saw bounce, nor for duplicates, delays and unknown reports', () => {
    assert.equal(feedbackWebhookEvent(hard, { ...recorded, state: 'bounced' }), undefined);
    assert.equal(feedbackWebhookEvent(hard, { ...recorded, result: 'duplicate' }), undefined);
    assert.equal(feedbackWebhookEvent({ ...hard, kind: 'delay' }, recorded), undefined);
    assert.equal(feedbackWebhookEvent({ kind: 'unknown' }, { result: 'ignored' }), undefined);
  });

  void it('nothing when the recipient cannot be trusted or is not known', () => {
    const { attributedTo: _a, ...untrusted } = recorded;
    assert.equal(feedbackWebhookEvent(hard, untrusted), undefined);
    assert.equal(feedbackWebhookEvent({ ...hard, kind: 'complaint' }, untrusted), undefined);
  });

  void it('a complaint is `complained`; one at a complaints address for an unknown message still is, without id', () => {
    const complaint: FeedbackInput = {
      kind: 'complaint',
      mailroomId: ID,
      linkedBy: 'message-id',
      recipient: 'reader@yahoo.example',
      source: 'arf:yahoo:abuse',
      toComplaintsAddress: true,
    };
    const event = feedbackWebhookEvent(complaint, recorded);
    assert.equal(event?.type, 'complained');
    assert.equal(event?.messageId, ID);
    assert.equal(event?.smtp, undefined);
    assert.equal(event?.reason, 'complaint');
    assert.deepEqual(feedbackWebhookEvent(complaint, { result: 'unmatched' }), {
      type: 'complained',
      recipient: 'reader@yahoo.example',
      smtp: undefined,
      reason: 'complaint',
    });
    assert.equal(
      feedbackWebhookEvent({ ...complaint, toComplaintsAddress: false }, { result: 'unmatched' }),
      undefined,
      'a report to the bounce domain naming an unknown message is not trusted',
    );
    assert.equal(feedbackWebhookEvent({ ...hard }, { result: 'unmatched' }), undefined);
  });
});

void describe('unsubscribeWebhookEvent', () => {
  void it('is `unsubscribed` with the recipient and the list, and passes the schema', () => {
    const input = unsubscribeWebhookEvent({ address: 'reader@example.org', list: 'weekly' });
    const event = toWebhookEvent(input);
    assert.equal(event.type, 'unsubscribed');
    assert.equal(event.recipient, 'reader@example.org');
    assert.equal(event.list, 'weekly');
    assert.equal(event.reason, 'one_click');
    assert.equal(event.messageId, undefined);
    assert.ok(webhookEventSchema.safeParse(event).success);
  });
});
