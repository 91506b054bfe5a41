import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream.js';
import { CASE_TIMEOUT_MS, stuffMessage } from './conformance-kit.js';

/**
 * Both senders must put the same message bytes on the wire: the pipelining sender's stuffing (CRLF line
 * ends, dots doubled, a final CRLF, then `.<CRLF>`) checked against nodemailer's own DataStream.
 */

async function nodemailerWireBytes(raw: Buffer): Promise<Buffer> {
  const stream = new DataStream();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  stream.end(raw);
  await ended;
  return Buffer.concat(chunks);
}

function pipeliningWireBytes(raw: Buffer): Buffer {
  return Buffer.concat([stuffMessage(raw).body, Buffer.from('.\r\n')]);
}

/** Lines of a stuffed body that start with a dot: each carries one stuffed dot. */
function stuffedDots(body: Buffer): number {
  const text = body.toString('latin1');
  return (text.match(/(?:^|\r\n)\./g) ?? []).length;
}

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
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

const FIXED_CASES = [
  '',
  '.',
  '..',
  '.\r\n',
  'Subject: x\r\n\r\n.\r\n..\r\n.x\r\n',
  'a\nb\n.c\n',
  'a\r.b\rc',
  'a\r\n.\r',
  '\r\n\r\n.',
  'no final line break',
  'ends with CR\r',
  'ends with LF\n',
  '.leading\r\n.\r\n.\r\n',
  'x\r\r\n.\n\n.\r\r.',
];
const TOKENS = ['\r', '\n', '\r\n', '.', '..', 'a', 'bc', ' ', '\u00e9'];
const RANDOM_CASES = 400;

void describe('wire bytes: pipelining sender vs nodemailer', () => {
  void it(
    'fixed tricky bodies are stuffed byte for byte like nodemailer',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      for (const text of FIXED_CASES) {
        const raw = Buffer.from(text, 'utf8');
        assert.deepEqual(pipeliningWireBytes(raw), await nodemailerWireBytes(raw), JSON.stringify(text));
      }
    },
  );

  void it(
    `${RANDOM_CASES} random bodies of line ends, dots and text are stuffed like nodemailer`,
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const next = random(2920);
      for (let n = 0; n < RANDOM_CASES; n++) {
        const length = Math.floor(next() * 40);
        let text = '';
        for (let i = 0; i < length; i++) text += TOKENS[Math.floor(next() * TOKENS.length)] ?? '';
        const raw = Buffer.from(text, 'utf8');
        const stuffed = stuffMessage(raw);
        assert.deepEqual(
          pipeliningWireBytes(raw),
          await nodemailerWireBytes(raw),
          `case ${n}: ${JSON.stringify(text)}`,
        );
        assert.equal(stuffed.sizeBytes, stuffed.body.length - stuffedDots(stuffed.body), `SIZE of case ${n}`);
      }
    },
  );

  void it('a body that needs no change is passed on without a copy', { timeout: CASE_TIMEOUT_MS }, () => {
    const raw = Buffer.from('Subject: x\r\n\r\nHello\r\n', 'utf8');
    const stuffed = stuffMessage(raw);
    assert.equal(stuffed.body, raw);
    assert.equal(stuffed.sizeBytes, raw.length);
  });
});
