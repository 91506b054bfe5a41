import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_FEEDBACK_BYTES, parseFeedback, type FeedbackReport } from '@mailroom/feedback';
import { dsnMessage, message, returnedHeaders, sentMessage, VERP } from './report-builders.js';

const CORPUS = fileURLToPath(new URL('../../../fixtures/feedback/', import.meta.url));
const corpus = readdirSync(CORPUS)
  .filter((name) => name.endsWith('.eml'))
  .sort()
  .map((name) => ({ name, raw: readFileSync(`${CORPUS}${name}`) }));

const KINDS = new Set(['bounce', 'complaint', 'delay', 'unknown']);
const NOTHING: FeedbackReport = { kind: 'unknown', format: 'none' };

/** A small seeded generator (mulberry32), so a failing input can be reproduced. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(next: () => number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(next() * 256)));
}

/** A text bounce from a mailer-daemon whose explanation is `body`. */
function daemonReport(body: string): string {
  return message(
    [
      ['From', 'MAILER-DAEMON@mx.example.net'],
      ['To', 'news@example.com'],
      ['Subject', 'Undelivered Mail Returned to Sender'],
    ],
    body,
  );
}

void describe('parseFeedback on garbage', () => {
  void it('returns kind unknown for inputs that are not reports, and never rejects', async () => {
    const next = random(0x5eed);
    const inputs: (Buffer | string)[] = [
      '',
      '\r\n',
      '\r\n\r\n\r\n',
      'not a message at all',
      ':::: ::::\n\n::::',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\n\n--x\n--x\n',
      'Content-Type: multipart/report; report-type=delivery-status; boundary=""\n\n----\n',
      'Content-Type: multipart/report; boundary="x"\n\n--x\nContent-Type: message/delivery-status\n\n\u0000\u0001\u0002',
      'Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n',
      'Content-Transfer-Encoding: base64\n\n!!!!====****',
      'Content-Type: text/plain; charset=utf-7\n\n+AGEAYgBj-',
      '\u0000'.repeat(1000),
      '\uD800\uDC00\uDFFF broken surrogates \uD800',
      Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x00]),
      ...Array.from({ length: 40 }, (_, i) => randomBytes(next, 1 + Math.floor(next() * 4096) + i)),
    ];
    for (const input of inputs) {
      const report = await parseFeedback(input, { verp: VERP });
      assert.deepEqual(report, NOTHING, JSON.stringify(input.toString().slice(0, 60)));
    }
    const notText: unknown[] = [undefined, null, 42, {}, ['x']];
    for (const input of notText) {
      assert.deepEqual(await parseFeedback(input as string), NOTHING);
    }
  });

  void it('never rejects on any truncation or byte corruption of the corpus', async () => {
    const next = random(0xc0ffee);
    let runs = 0;
    for (const { name, raw } of corpus) {
      const cuts = [1, 10, 100, ...Array.from({ length: 6 }, () => Math.floor(next() * raw.length))];
      for (const cut of cuts) {
        const report = await parseFeedback(raw.subarray(0, cut), { verp: VERP });
        assert.ok(KINDS.has(report.kind), `${name} cut at ${cut}`);
        runs++;
      }
      const corrupted = Buffer.from(raw);
      for (let i = 0; i < 20; i++)
        corrupted[Math.floor(next() * corrupted.length)] = Math.floor(next() * 256);
      assert.ok(KINDS.has((await parseFeedback(corrupted, { verp: VERP })).kind), `${name} corrupted`);
      runs++;
    }
    assert.ok(runs >= 300);
  });

  void it(
    'reads pathological text in linear time (no regular expression backtracks on it)',
    { timeout: 60_000 },
    async () => {
      const long = 200_000;
      const bodies = [
        `550:${' '.repeat(long)}x`,
        `550 -${' \t'.repeat(long / 2)}x`,
        `<${'a@'.repeat(long / 2)}\n`,
        `<${'a'.repeat(long)}@${'b'.repeat(long)}\n`,
        '-'.repeat(long),
        `${' '.repeat(long)}\n`,
        `${' -'.repeat(long / 2)}\n`,
        "Remote Server returned '".repeat(long / 24),
        `Delivery has failed to these recipients or groups:\n\nx@example.net\n\nDiagnostic information for administrators:\n#550 5.1.1${' '.repeat(long)}x`,
        `----- The following addresses had permanent fatal errors -----\n<x@example.net>\n${'(reason: '.repeat(long / 9)}`,
        `----- The following addresses had permanent fatal errors -----\n<x@example.net>\n(expanded from: ${'a@'.repeat(long / 2)}`,
        `Message-ID: <${'a'.repeat(long)}`,
        `Status:${' '.repeat(long)}x`,
        `#${'5.1.1'.repeat(long / 5)}`,
        'a@b.'.repeat(long / 4),
        `This is the mail system at host x.\n\n<x@example.net>: host said: ${'550 '.repeat(long / 4)}`,
        `This is the mail system at host x.\n\n<x@example.net>: ${'(in reply to '.repeat(long / 13)}`,
        `This message was created automatically by mail delivery software.\n\nThe following address(es) failed:\n\n  x@example.net\n${'    550-5.1.1 '.repeat(long / 14)}`,
      ];
      for (const body of bodies) {
        const report = await parseFeedback(daemonReport(body));
        assert.ok(KINDS.has(report.kind));
      }
      const dsn = await parseFeedback(
        dsnMessage({
          to: 'news@example.com',
          recipients: [
            [
              'Final-Recipient: rfc822; x@example.net',
              'Action: failed',
              `Status:${' '.repeat(long)}5.1.1`,
              `Diagnostic-Code: smtp;${' '.repeat(long)}${'550-'.repeat(long / 4)}`,
            ],
          ],
        }),
      );
      assert.equal(dsn.kind, 'bounce');
      assert.ok((dsn.diagnostic ?? '').length <= 1000);
    },
  );
});

void describe('parseFeedback limits', () => {
  const sent = sentMessage();

  void it(`reads only maxBytes (default ${DEFAULT_MAX_FEEDBACK_BYTES} bytes): a huge returned copy costs nothing`, async () => {
    const head = dsnMessage({
      to: sent.returnPath,
      recipients: [['Final-Recipient: rfc822; gone@example.net', 'Action: failed', 'Status: 5.1.1']],
      returned: returnedHeaders(sent, 'gone@example.net'),
    });
    // The returned message's body, 8 MiB of it, after the report's parts.
    const huge = `${head.replace(/--dsn-boundary-0001--\r\n$/, '')}--dsn-boundary-0001\r\nContent-Type: message/rfc822\r\n\r\n${returnedHeaders(sent, 'gone@example.net')}\r\n${'x'.repeat(8 * 1024 * 1024)}\r\n--dsn-boundary-0001--\r\n`;
    assert.ok(huge.length > 8 * DEFAULT_MAX_FEEDBACK_BYTES);
    const report = await parseFeedback(huge, { verp: VERP });
    assert.equal(report.kind, 'bounce');
    assert.equal(report.recipient, 'gone@example.net');
    assert.equal(report.mailroomId, sent.id);
    assert.equal(report.mailroomIdSource, 'verp');
    // A limit that cuts before the delivery-status part leaves nothing to read.
    const cut = head.indexOf('Content-Type: message/delivery-status');
    assert.ok(cut > 0);
    const short = await parseFeedback(head, { maxBytes: cut });
    assert.notEqual(short.kind, 'bounce');
  });

  void it('refuses messages with more than 100 MIME parts', async () => {
    const withParts = (count: number): string => {
      const parts = Array.from(
        { length: count },
        (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`,
      );
      const dsnPart = `--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n`;
      return message(
        [
          ['From', 'MAILER-DAEMON@mx.example.net'],
          ['Content-Type', 'multipart/report; report-type=delivery-status; boundary="b"'],
        ],
        `${dsnPart}${parts.join('')}--b--\r\n`,
      );
    };
    assert.equal((await parseFeedback(withParts(50))).kind, 'bounce');
    assert.deepEqual(await parseFeedback(withParts(500)), NOTHING);
  });

  void it('reads at most 100 recipients of a DSN', async () => {
    const recipients = Array.from({ length: 300 }, (_, i) => [
      `Final-Recipient: rfc822; user${i}@example.net`,
      'Action: failed',
      'Status: 5.1.1',
    ]);
    const report = await parseFeedback(dsnMessage({ to: 'news@example.com', recipients }));
    assert.equal(report.kind, 'bounce');
    assert.equal(report.recipient, 'user0@example.net');
    assert.equal(report.recipients?.length, 100);
    assert.equal(report.recipients?.at(-1)?.finalRecipient, 'user99@example.net');
  });

  void it('looks at no more than 10 envelope recipients for the return path', async () => {
    const raw = dsnMessage({
      to: 'undisclosed-recipients:;',
      recipients: [['Final-Recipient: rfc822; gone@example.net', 'Action: failed', 'Status: 5.1.1']],
    });
    const filler = Array.from({ length: 10 }, (_, i) => `other${i}@bounce.example.com`);
    assert.equal(
      (await parseFeedback(raw, { verp: VERP, rcptTo: [...filler.slice(1), sent.returnPath] })).mailroomId,
      sent.id,
    );
    assert.equal(
      (await parseFeedback(raw, { verp: VERP, rcptTo: [...filler, sent.returnPath] })).mailroomId,
      undefined,
    );
  });
});
