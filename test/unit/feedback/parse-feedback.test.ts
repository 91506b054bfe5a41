import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, newMessageId } from '@mailroom/core';
import { encodeVerp, mailroomIdOf, parseFeedback, type FeedbackReport } from '@mailroom/feedback';
import { arfMessage, dsnMessage, message, returnedHeaders, sentMessage, VERP } from './report-builders.js';

const CORPUS = fileURLToPath(new URL('../../../fixtures/feedback/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${CORPUS}expected.json`, 'utf8')) as {
  reports: Record<string, { expected: FeedbackReport }>;
};

/** A text bounce in Exim's layout, sent to `to`, returning the headers `returned`. */
function eximBounce(to: string, returned: string): string {
  return message(
    [
      ['From', 'Mail Delivery System <Mailer-Daemon@mail.example.net>'],
      ['To', to],
      ['Subject', 'Mail delivery failed: returning message to sender'],
    ],
    [
      'This message was created automatically by mail delivery software.',
      '',
      'A message that you sent could not be delivered to one or more of its',
      'recipients. This is a permanent error. The following address(es) failed:',
      '',
      '  victim@example.net',
      '    SMTP error from remote mail server after RCPT TO:<victim@example.net>:',
      '    550 5.1.1 User unknown',
      '',
      '------ This is a copy of the message, including all the headers. ------',
      '',
      returned,
    ].join('\n'),
  );
}

void describe('parseFeedback: which message a report is about', () => {
  void it('takes the id from a return path whose MAC checks out, before the returned Message-ID', async () => {
    const sent = sentMessage();
    const other = sentMessage(Date.now() + 1000);
    // The returned copy names another message: a relay rewrote it, or the report lies. The signed path wins.
    const report = await parseFeedback(
      eximBounce(sent.returnPath, returnedHeaders(other, 'victim@example.net')),
      {
        verp: VERP,
      },
    );
    assert.equal(report.kind, 'bounce');
    assert.equal(report.mailroomId, sent.id);
    assert.equal(report.mailroomIdSource, 'verp');
    assert.equal(report.originalMessageId, other.messageId);
  });

  void it('ignores a forged return path: a tampered MAC, another secret, another domain', async () => {
    const sent = sentMessage();
    const tampered = sent.returnPath.replace(/\.([0-9a-z])/, (_m, c: string) => `.${c === '0' ? '1' : '0'}`);
    const otherSecret = encodeVerp(sent.id, { ...VERP, secret: 'not-the-secret-of-this-mailroom!' });
    const otherDomain = encodeVerp(sent.id, { ...VERP, domain: 'bounce.example.org' });
    for (const forged of [tampered, otherSecret, otherDomain]) {
      assert.notEqual(forged, sent.returnPath);
      // With no Message-ID to fall back on, the report names no message at all.
      const bare = await parseFeedback(eximBounce(forged, ''), { verp: VERP, rcptTo: [forged] });
      assert.equal(bare.kind, 'bounce', forged);
      assert.equal(bare.mailroomId, undefined, forged);
      assert.equal(bare.mailroomIdSource, undefined, forged);
      // With one, the id comes from it, and says so: the caller can tell it is unauthenticated.
      const returned = returnedHeaders(sent, 'victim@example.net', forged);
      const withId = await parseFeedback(eximBounce(forged, returned), { verp: VERP });
      assert.equal(withId.mailroomId, sent.id, forged);
      assert.equal(withId.mailroomIdSource, 'message-id', forged);
    }
  });

  void it('finds the return path in the envelope recipients when no header names it', async () => {
    const sent = sentMessage();
    const raw = dsnMessage({
      to: 'undisclosed-recipients:;',
      recipients: [['Final-Recipient: rfc822; gone@example.net', 'Action: failed', 'Status: 5.1.1']],
    });
    assert.equal((await parseFeedback(raw, { verp: VERP })).mailroomId, undefined);
    const report = await parseFeedback(raw, { verp: VERP, rcptTo: [`<${sent.returnPath.toUpperCase()}>`] });
    assert.equal(report.mailroomId, sent.id);
    assert.equal(report.mailroomIdSource, 'verp');
  });

  void it('matches Mailroom Message-IDs exactly: upper-case ULIDs of other systems are not ours', () => {
    const id = newMessageId();
    assert.equal(mailroomIdOf(`<${id}@example.com>`), id);
    assert.equal(mailroomIdOf(`${id}@example.com`), id);
    assert.equal(mailroomIdOf(`<${id.toUpperCase()}@example.com>`), undefined);
    assert.equal(mailroomIdOf('<01ARZ3NDEKTSV4RRFFQ69G5FAV@mail.example.org>'), undefined);
    assert.equal(mailroomIdOf(`<${id}x@example.com>`), undefined);
    assert.equal(mailroomIdOf(`<prefix.${id}@example.com>`), undefined);
    assert.equal(mailroomIdOf(`<${id}>`), undefined);
    assert.equal(mailroomIdOf(undefined), undefined);
  });

  void it('rejects unusable options with a ConfigError', async () => {
    await assert.rejects(parseFeedback('x', { verp: { ...VERP, secret: 'short' } }), ConfigError);
    await assert.rejects(parseFeedback('x', { maxBytes: 0 }), ConfigError);
    await assert.rejects(parseFeedback('x', { maxBytes: 1.5 }), ConfigError);
  });
});

void describe('parseFeedback: delay reports', () => {
  void it('are never bounces and never hard, whatever their status says', async () => {
    for (const status of ['4.4.1', '5.1.1']) {
      const report = await parseFeedback(
        dsnMessage({
          to: 'news@example.com',
          recipients: [
            [
              'Final-Recipient: rfc822; slow@example.net',
              'Action: delayed',
              `Status: ${status}`,
              `Diagnostic-Code: smtp; 550 ${status} try later`,
            ],
          ],
        }),
      );
      assert.equal(report.kind, 'delay', status);
      assert.equal(report.action, 'delayed');
      assert.equal(report.bounceClass, undefined, status);
    }
  });

  void it('in the corpus are all delays without a class', () => {
    const delays = Object.entries(manifest.reports).filter(([, entry]) => entry.expected.kind === 'delay');
    assert.ok(delays.length >= 3, `only ${delays.length} delays`);
    for (const [name, { expected }] of delays) {
      assert.equal(expected.action, 'delayed', name);
      assert.equal(expected.bounceClass, undefined, name);
    }
  });

  void it('in Postfix text (THIS IS A WARNING ONLY) are delays', async () => {
    const raw = message(
      [
        ['From', 'MAILER-DAEMON@relay.example.com (Mail Delivery System)'],
        ['To', 'news@example.com'],
        ['Subject', 'Delayed Mail (still being retried)'],
      ],
      [
        'This is the mail system at host relay.example.com.',
        '',
        '# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #',
        '',
        '<slow@example.org>: host mx.example.org[198.51.100.1] said: 452 4.2.2 Mailbox full',
      ].join('\n'),
    );
    const report = await parseFeedback(raw);
    assert.equal(report.kind, 'delay');
    assert.equal(report.format, 'text');
    assert.equal(report.bounceClass, undefined);
    assert.equal(report.recipient, 'slow@example.org');
  });
});

void describe('parseFeedback: a DSN about several recipients', () => {
  const groups = {
    relayed: [
      'Original-Recipient: rfc822; team@example.org',
      'Final-Recipient: rfc822; ann@example.org',
      'Action: relayed',
      'Status: 2.0.0',
    ],
    delayed: ['Final-Recipient: rfc822; bob@example.org', 'Action: delayed', 'Status: 4.4.1'],
    failed: [
      'Original-Recipient: rfc822; team@example.org',
      'Final-Recipient: rfc822; Cy@Example.ORG',
      'Action: failed',
      'Status: 5.0.0',
      'Diagnostic-Code: smtp; 550-5.1.1 no such',
      ' 550 5.1.1 user',
    ],
  };

  void it('describes the first failed recipient and lists them all, in order', async () => {
    const report = await parseFeedback(
      dsnMessage({ to: 'news@example.com', recipients: [groups.relayed, groups.delayed, groups.failed] }),
    );
    assert.equal(report.kind, 'bounce');
    assert.equal(report.bounceClass, 'hard');
    // Original-Recipient, the address as sent, before Final-Recipient; the domain lower-cased.
    assert.equal(report.recipient, 'team@example.org');
    // The generic 5.0.0 gives way to the 5.1.1 of the reply, whose continuation lines are joined.
    assert.equal(report.status, '5.1.1');
    assert.equal(report.diagnostic, '550 5.1.1 no such user');
    assert.deepEqual(report.recipients, [
      {
        originalRecipient: 'team@example.org',
        finalRecipient: 'ann@example.org',
        action: 'relayed',
        status: '2.0.0',
      },
      { finalRecipient: 'bob@example.org', action: 'delayed', status: '4.4.1' },
      {
        originalRecipient: 'team@example.org',
        finalRecipient: 'Cy@example.org',
        action: 'failed',
        status: '5.1.1',
        diagnostic: '550 5.1.1 no such user',
      },
    ]);
  });

  void it('describes the first delayed one when none failed, and a success when all went through', async () => {
    const delayed = await parseFeedback(
      dsnMessage({ to: 'news@example.com', recipients: [groups.relayed, groups.delayed] }),
    );
    assert.equal(delayed.kind, 'delay');
    assert.equal(delayed.recipient, 'bob@example.org');
    assert.equal(delayed.recipients?.length, 2);
    const relayed = await parseFeedback(dsnMessage({ to: 'news@example.com', recipients: [groups.relayed] }));
    assert.equal(relayed.kind, 'unknown');
    assert.equal(relayed.format, 'dsn');
    assert.equal(relayed.action, 'relayed');
  });
});

void describe('parseFeedback: bounce class', () => {
  const failed = async (fields: string[]): Promise<FeedbackReport> =>
    parseFeedback(
      dsnMessage({
        to: 'news@example.com',
        recipients: [['Final-Recipient: rfc822; x@example.net', ...fields]],
      }),
    );

  void it('follows the status class, then the reply code, and is hard for a failure that gives neither', async () => {
    assert.equal((await failed(['Action: failed', 'Status: 5.2.1'])).bounceClass, 'hard');
    assert.equal((await failed(['Action: failed', 'Status: 4.2.2'])).bounceClass, 'soft');
    assert.equal(
      (await failed(['Action: failed', 'Diagnostic-Code: smtp; 552 mailbox full'])).bounceClass,
      'hard',
    );
    assert.equal(
      (await failed(['Action: failed', 'Diagnostic-Code: smtp; 452 try later'])).bounceClass,
      'soft',
    );
    assert.equal((await failed(['Action: failed'])).bounceClass, 'hard');
    // Action is inferred from the status when a report leaves it out.
    const inferred = await failed(['Status: 5.1.1']);
    assert.equal(inferred.kind, 'bounce');
    assert.equal(inferred.action, 'failed');
  });
});

void describe('parseFeedback: complaints', () => {
  const sent = sentMessage();

  void it('are complaints for abuse and unregistered types, not for not-spam or auth-failure reports', async () => {
    for (const [type, kind] of [
      ['abuse', 'complaint'],
      ['fraud', 'complaint'],
      ['opt-out', 'complaint'],
      ['not-spam', 'unknown'],
      ['auth-failure', 'unknown'],
    ] as const) {
      const report = await parseFeedback(
        arfMessage({
          feedbackFields: [
            `Feedback-Type: ${type}`,
            'User-Agent: Test/1.0',
            'Version: 1',
            'Original-Rcpt-To: <r@example.net>',
          ],
          returned: returnedHeaders(sent, 'r@example.net'),
        }),
        { verp: VERP },
      );
      assert.equal(report.kind, kind, type);
      assert.equal(report.format, 'arf');
      assert.equal(report.feedbackType, type);
      assert.equal(report.recipient, 'r@example.net');
      assert.equal(report.mailroomId, sent.id);
      assert.equal(report.mailroomIdSource, 'verp');
    }
  });

  void it('without a Feedback-Type are complaints; a redacted To names no recipient', async () => {
    const report = await parseFeedback(
      arfMessage({
        feedbackFields: ['User-Agent: Test/1.0', 'Version: 1'],
        returned: returnedHeaders(sent, 'redacted'),
      }),
    );
    assert.equal(report.kind, 'complaint');
    assert.equal(report.feedbackType, undefined);
    assert.equal(report.recipient, undefined);
    assert.equal(report.mailroomIdSource, 'message-id');
  });
});

void describe('parseFeedback: auto-replies', () => {
  const sent = sentMessage();
  const body =
    'I am out of the office until Monday. Mail about undeliverable parcels goes to desk@example.net.';
  const base: [string, string][] = [
    ['From', 'Jo Example <jo@example.net>'],
    ['To', sent.returnPath],
    ['In-Reply-To', sent.messageId],
  ];

  void it('are recognised by RFC 3834 and autoresponder fields and by subject, and are never bounces', async () => {
    const variants: [string, [string, string][]][] = [
      [
        'Auto-Submitted',
        [
          ['Auto-Submitted', 'auto-replied'],
          ['Subject', 'Re: Delivery failed for your order'],
        ],
      ],
      [
        'X-Autoreply',
        [
          ['X-Autoreply', 'yes'],
          ['Subject', 'Returned mail policy'],
        ],
      ],
      [
        'X-Autorespond',
        [
          ['X-Autorespond', 'Undeliverable parcels'],
          ['Subject', 'Delivery failure notice'],
        ],
      ],
      [
        'Precedence',
        [
          ['Precedence', 'auto_reply'],
          ['Subject', 'Undeliverable parcels'],
        ],
      ],
      [
        'X-Autogenerated',
        [
          ['X-Autogenerated', 'Reply'],
          ['Subject', 'Undeliverable parcels'],
        ],
      ],
      ['Automatic reply', [['Subject', 'Automatic reply: Your order could not be delivered']]],
      ['Out of Office', [['Subject', 'Out of Office AutoReply: Your order could not be delivered']]],
      ['Réponse automatique', [['Subject', 'Réponse automatique : Votre commande']]],
      ['Notes', [['Subject', 'Jo Example is out of the office.']]],
    ];
    for (const [name, headers] of variants) {
      const report = await parseFeedback(message([...base, ...headers], body), { verp: VERP });
      assert.equal(report.kind, 'unknown', name);
      assert.equal(report.format, 'auto-reply', name);
      assert.equal(report.bounceClass, undefined, name);
      // Still linked to the message it answers.
      assert.equal(report.mailroomId, sent.id, name);
    }
  });

  void it('without those signs, a person mentioning a failed delivery is still not a bounce', async () => {
    const report = await parseFeedback(message([...base, ['Subject', 'Re: March product update']], body));
    assert.equal(report.kind, 'unknown');
    assert.equal(report.format, 'none');
  });

  void it('do not hide bounces: a mailer-daemon report with Auto-Submitted: auto-replied is a bounce', async () => {
    const raw = message(
      [
        ['From', 'MAILER-DAEMON@mx.example.net'],
        ['To', sent.returnPath],
        ['Subject', 'Automatic reply: delivery failed'],
        ['Auto-Submitted', 'auto-replied'],
      ],
      'Your message could not be delivered to gone@example.net.\n\nReason: 550 5.1.1 User unknown',
    );
    const report = await parseFeedback(raw, { verp: VERP });
    assert.equal(report.kind, 'bounce');
    assert.equal(report.format, 'text');
    assert.equal(report.recipient, 'gone@example.net');
    assert.equal(report.status, '5.1.1');
  });
});

void describe('parseFeedback: text layouts', () => {
  void it('reads Exchange "Remote Server returned" replies and Gmail legacy delay warnings', async () => {
    const exchange = await parseFeedback(
      message(
        [
          ['From', 'postmaster@example.org'],
          ['To', 'news@example.com'],
          ['Subject', 'Undeliverable: March product update'],
        ],
        [
          'Delivery has failed to these recipients or groups:',
          '',
          'kim@example.org',
          "The recipient's e-mail address couldn't be found.",
          '',
          'Diagnostic information for administrators:',
          '',
          'Generating server: mail.example.org',
          '',
          'kim@example.org',
          "Remote Server returned '< #5.0.0 smtp;550 5.1.1 <kim@example.org>... User unknown>'",
        ].join('\n'),
      ),
    );
    assert.equal(exchange.kind, 'bounce');
    assert.equal(exchange.generator, 'exchange');
    assert.equal(exchange.recipient, 'kim@example.org');
    assert.equal(exchange.status, '5.1.1');
    assert.equal(exchange.diagnostic, '550 5.1.1 <kim@example.org>... User unknown');

    const gmail = await parseFeedback(
      message(
        [
          ['From', 'Mail Delivery Subsystem <mailer-daemon@googlemail.com>'],
          ['To', 'news@example.com'],
          ['Subject', 'Delivery Status Notification (Delay)'],
        ],
        [
          'This is an automatically generated Delivery Status Notification',
          '',
          'THIS IS A WARNING MESSAGE ONLY.',
          '',
          'YOU DO NOT NEED TO RESEND YOUR MESSAGE.',
          '',
          'Delivery to the following recipient has been delayed:',
          '',
          '     slow@example.org',
          '',
          'Message will be retried for 2 more day(s)',
          '',
          'Technical details of temporary failure:',
          'The recipient server did not accept our requests to connect. [mx.example.org (1): Connection dropped]',
        ].join('\n'),
      ),
    );
    assert.equal(gmail.kind, 'delay');
    assert.equal(gmail.generator, 'gmail');
    assert.equal(gmail.recipient, 'slow@example.org');
    assert.equal(gmail.bounceClass, undefined);
  });
});
