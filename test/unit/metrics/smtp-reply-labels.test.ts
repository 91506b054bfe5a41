import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ENHANCED_STATUS_LABELS,
  NO_ENHANCED_STATUS,
  SMTP_REPLY_CODES,
  SMTP_STAGES,
  enhancedStatusLabel,
  replyCodeLabel,
  smtpStageLabel,
} from '@mailroom/metrics';

describe('SMTP reply labels', () => {
  it('names the stage from the command as the senders report it', () => {
    const cases: [string | undefined, string][] = [
      ['CONN', 'connect'],
      ['EHLO', 'ehlo'],
      ['HELO', 'ehlo'],
      ['STARTTLS', 'starttls'],
      ['AUTH PLAIN', 'auth'],
      ['AUTH LOGIN', 'auth'],
      ['AUTH', 'auth'],
      ['MAIL FROM', 'mail'],
      ['RCPT TO', 'rcpt'],
      ['rcpt to', 'rcpt'],
      ['DATA', 'data'],
      ['RSET', 'other'],
      ['API', 'other'],
      ['', 'other'],
      [undefined, 'other'],
      ['RCPT TO:<ada@example.org>', 'rcpt'],
    ];
    for (const [command, stage] of cases) assert.equal(smtpStageLabel(command), stage, String(command));
  });

  it('keeps allowlisted codes, counts others by class, and ignores what is no reply code', () => {
    assert.equal(replyCodeLabel(550), '550');
    assert.equal(replyCodeLabel(421), '421');
    assert.equal(replyCodeLabel(250), '250');
    assert.equal(replyCodeLabel(559), '5xx');
    assert.equal(replyCodeLabel(499), '4xx');
    assert.equal(replyCodeLabel(354), '3xx');
    assert.equal(replyCodeLabel(220), '2xx');
    assert.equal(replyCodeLabel(undefined), undefined);
    assert.equal(replyCodeLabel(99), undefined);
    assert.equal(replyCodeLabel(600), undefined);
    assert.equal(replyCodeLabel(550.5), undefined);
    for (const code of SMTP_REPLY_CODES) assert.equal(replyCodeLabel(Number(code)), code);
  });

  it('keeps registered enhanced status codes and folds everything else', () => {
    assert.equal(enhancedStatusLabel('5.1.1'), '5.1.1');
    assert.equal(enhancedStatusLabel('4.7.28'), '4.7.28');
    assert.equal(enhancedStatusLabel('5.7.26'), '5.7.26');
    assert.equal(enhancedStatusLabel('2.0.0'), '2.0.0');
    assert.equal(enhancedStatusLabel('5.7.31'), '5.other', 'not (yet) registered');
    assert.equal(enhancedStatusLabel('4.9.1'), '4.other');
    assert.equal(enhancedStatusLabel('5.01.1'), '5.other', 'not in the registry spelling');
    assert.equal(enhancedStatusLabel('3.1.1'), NO_ENHANCED_STATUS, 'no class 3');
    assert.equal(enhancedStatusLabel('5.1'), NO_ENHANCED_STATUS);
    assert.equal(enhancedStatusLabel('5.1.1 user unknown'), NO_ENHANCED_STATUS, 'never reply text');
    assert.equal(enhancedStatusLabel(undefined), NO_ENHANCED_STATUS);
  });

  it('has label lists of a bounded size, every value of which the functions can yield', () => {
    assert.equal(SMTP_STAGES.length, 8);
    assert.ok(ENHANCED_STATUS_LABELS.length < 250, `${ENHANCED_STATUS_LABELS.length} enhanced labels`);
    assert.equal(new Set(ENHANCED_STATUS_LABELS).size, ENHANCED_STATUS_LABELS.length);
    for (const value of ENHANCED_STATUS_LABELS) {
      if (value === NO_ENHANCED_STATUS || value.endsWith('.other')) continue;
      assert.equal(enhancedStatusLabel(value), value);
    }
    // Random statuses only ever map into the list.
    const allowed = new Set(ENHANCED_STATUS_LABELS);
    for (let i = 0; i < 5000; i += 1) {
      const status = `${i % 7}.${(i * 7) % 13}.${(i * 13) % 101}`;
      assert.ok(allowed.has(enhancedStatusLabel(status)), status);
    }
  });
});
