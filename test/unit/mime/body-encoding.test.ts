// Body encoders: quoted-printable round trip and line rules, and the 7bit / QP / base64 choice.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BOUNDARY_MARKER, encodeQuotedPrintable, encodeTextBody, QP_MAX_LINE_CHARS } from '@mailroom/mime';

/** Independent quoted-printable decoder (RFC 2045 6.7): soft breaks removed, =XX decoded. */
function decodeQuotedPrintable(encoded: string): Buffer {
  const bytes: number[] = [];
  const text = encoded.replace(/=\r\n/g, '');
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (c === '=') {
      const hex = text.slice(i + 1, i + 3);
      assert.match(hex, /^[0-9A-F]{2}$/, `bad escape at ${i}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0));
  }
  return Buffer.from(bytes);
}

function canonicalLines(text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n');
}

/** Checks every rule of the QP output for `text`; returns the encoded string. */
function assertQuotedPrintable(text: string): string {
  const encoded = encodeQuotedPrintable(text).toString('latin1');
  assert.deepEqual(decodeQuotedPrintable(encoded), Buffer.from(canonicalLines(text), 'utf8'), 'round trip');
  assert.ok(!encoded.includes(BOUNDARY_MARKER), 'no boundary marker');
  assert.doesNotMatch(encoded, /\r(?!\n)|(?<!\r)\n/, 'CRLF only');
  for (const line of encoded.split('\r\n')) {
    assert.ok(line.length <= QP_MAX_LINE_CHARS, `line of ${line.length}: ${line}`);
    assert.match(line, /^[\x21-\x7e \t]*$/, 'printable ASCII');
    assert.doesNotMatch(line, /[ \t]$/, 'no trailing whitespace');
    if (line.endsWith('=')) {
      // A soft break never splits the escapes of one UTF-8 character.
      const tail = decodeQuotedPrintable(line.slice(0, -1));
      let i = tail.length - 1;
      while (i >= 0 && ((tail[i] as number) & 0xc0) === 0x80) i--;
      const lead = i >= 0 ? (tail[i] as number) : 0;
      const expected = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      assert.equal(
        tail.length - Math.max(i, 0),
        i >= 0 ? expected : 0,
        `complete character before soft break`,
      );
    }
  }
  return encoded;
}

/** xorshift, so the generated inputs are the same on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

const ALPHABET = [
  'a',
  'Z',
  ' ',
  ' ',
  '\t',
  '=',
  '.',
  '_',
  '\r\n',
  '\n',
  '\r',
  'é',
  '漢',
  '🎉',
  '\0',
  '\u007f',
  '-',
];

void describe('encodeQuotedPrintable', () => {
  void it('passes printable ASCII through and escapes "="', () => {
    assert.equal(encodeQuotedPrintable('a=b.c').toString('latin1'), 'a=3Db.c');
  });

  void it('encodes trailing whitespace before a line break and at the end, not elsewhere', () => {
    assert.equal(encodeQuotedPrintable('a b \nc\t').toString('latin1'), 'a b=20\r\nc=09');
  });

  void it('writes every line break style as CRLF', () => {
    assert.equal(encodeQuotedPrintable('1\r\n2\n3\r4').toString('latin1'), '1\r\n2\r\n3\r\n4');
  });

  void it('soft-breaks long lines at 76 characters', () => {
    const encoded = assertQuotedPrintable('x'.repeat(1000));
    assert.equal(encoded.split('\r\n')[0], `${'x'.repeat(75)}=`);
  });

  void it('keeps a line of exactly 75 characters whole, and a single dot line as is', () => {
    assert.equal(
      encodeQuotedPrintable(`${'y'.repeat(75)}\n.\n`).toString('latin1'),
      `${'y'.repeat(75)}\r\n.\r\n`,
    );
  });

  void it('never splits a multi-byte character across a soft break', () => {
    for (const char of ['é', '漢', '🎉']) {
      for (let prefix = 0; prefix < 12; prefix++) assertQuotedPrintable('a'.repeat(prefix) + char.repeat(60));
    }
  });

  void it('holds every rule for 400 generated texts', () => {
    const next = random(0x5eed);
    for (let n = 0; n < 400; n++) {
      const length = Math.floor(next() * 300);
      let text = '';
      for (let i = 0; i < length; i++) text += ALPHABET[Math.floor(next() * ALPHABET.length)];
      assertQuotedPrintable(text);
    }
  });
});

void describe('encodeTextBody', () => {
  void it('sends short printable ASCII lines as 7bit, line breaks as CRLF', () => {
    const encoded = encodeTextBody('Hello\nWorld. = 1\r\n');
    assert.equal(encoded.encoding, '7bit');
    assert.equal(encoded.body.toString('latin1'), 'Hello\r\nWorld. = 1\r\n');
  });

  void it('uses quoted-printable for long lines, Latin text with accents, the marker and control characters', () => {
    for (const text of [
      'x'.repeat(77),
      'Crème brûlée',
      `a ${BOUNDARY_MARKER} b`,
      'del \u007f',
      'nul \0 here',
    ]) {
      assert.equal(encodeTextBody(text).encoding, 'quoted-printable', JSON.stringify(text));
    }
  });

  void it('uses base64 when non-Latin characters dominate, with CRLF line breaks inside', () => {
    const encoded = encodeTextBody('日本語\n中文');
    assert.equal(encoded.encoding, 'base64');
    assert.equal(Buffer.from(encoded.body.toString('latin1'), 'base64').toString('utf8'), '日本語\r\n中文');
  });

  void it('wraps base64 at 76 characters', () => {
    const encoded = encodeTextBody('漢'.repeat(500));
    const lines = encoded.body.toString('latin1').split('\r\n');
    assert.ok(lines.length > 1);
    for (const line of lines.slice(0, -1)) assert.equal(line.length, 76);
    assert.equal(Buffer.from(lines.join(''), 'base64').toString('utf8'), '漢'.repeat(500));
  });
});
