// DKIM relaxed canonicalization against RFC 6376 section 3.4, and the Ed25519 example of RFC 8463
// Appendix A reproduced octet for octet from Mailroom's canonicalization and key import.
import assert from 'node:assert/strict';
import { createHash, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  dkimDnsRecord,
  loadDkimKeys,
  relaxedBody,
  relaxedHeaderField,
  relaxedHeaderValue,
} from '@mailroom/mime';

const body = (text: string): string => relaxedBody(Buffer.from(text, 'latin1')).toString('latin1');
const bodyHash = (text: string): string =>
  createHash('sha256')
    .update(relaxedBody(Buffer.from(text, 'latin1')))
    .digest('base64');

void describe('relaxed header canonicalization (RFC 6376 3.4.2)', () => {
  void it('turns the example of section 3.4.5 into a:X and b:Y Z', () => {
    // A: <SP> X <CRLF>   and   B <SP> : <SP> Y <HTAB><CRLF> <HTAB> Z <SP><SP><CRLF>
    // (the name's trailing whitespace is dropped when the block is read; here the name is given as such).
    assert.equal(relaxedHeaderField('A', ' X'), 'a:X\r\n');
    assert.equal(relaxedHeaderField('B', ' Y\t\r\n\tZ  '), 'b:Y Z\r\n');
  });

  void it('unfolds, collapses runs of SP and HTAB to one SP and trims both ends', () => {
    assert.equal(relaxedHeaderValue('   a  \t b\r\n \t c\t '), 'a b c');
    assert.equal(relaxedHeaderValue('no-change'), 'no-change');
    assert.equal(relaxedHeaderValue(''), '');
    assert.equal(relaxedHeaderValue(' \t\r\n '), '');
  });

  void it('lower-cases the name only, never the value', () => {
    assert.equal(relaxedHeaderField('Message-ID', ' <AbC@Example.COM>'), 'message-id:<AbC@Example.COM>\r\n');
  });

  void it('leaves octets outside ASCII as they are (UTF-8 headers, read as latin1)', () => {
    const value = Buffer.from(' Grüße  aus   Köln ', 'utf8').toString('latin1');
    const relaxed = relaxedHeaderValue(value);
    assert.equal(Buffer.from(relaxed, 'latin1').toString('utf8'), 'Grüße aus Köln');
  });

  void it('collapses a very long whitespace run to one space', () => {
    assert.equal(relaxedHeaderValue(`a${' \t'.repeat(50_000)}b${' '.repeat(50_000)}`), 'a b');
  });
});

void describe('relaxed body canonicalization (RFC 6376 3.4.4)', () => {
  void it('turns the example body of section 3.4.5 into " C" and "D E"', () => {
    assert.equal(body(' C \r\nD \t E\r\n\r\n\r\n'), ' C\r\nD E\r\n');
  });

  void it('canonicalizes an empty body, and a body of empty lines, to nothing', () => {
    assert.equal(body(''), '');
    assert.equal(body('\r\n'), '');
    assert.equal(body('\r\n\r\n\r\n'), '');
    assert.equal(body(' \t \r\n  \r\n'), '');
    // The SHA-256 of nothing, as RFC 6376 section 3.4.4 gives it for an empty relaxed body.
    assert.equal(bodyHash(''), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  void it('drops trailing empty lines, including lines of whitespace only, and keeps inner ones', () => {
    assert.equal(body('a\r\n\r\nb\r\n\r\n\r\n'), 'a\r\n\r\nb\r\n');
    assert.equal(body('a\r\n \r\n\t\r\n'), 'a\r\n');
    assert.equal(body('a\r\n  \r\nb\r\n'), 'a\r\n\r\nb\r\n');
  });

  void it('removes whitespace at line ends and reduces inner runs to one SP, leading runs included', () => {
    assert.equal(body('a  b\t\tc \t\r\n'), 'a b c\r\n');
    assert.equal(body('\t\tindented\r\n'), ' indented\r\n');
  });

  void it('adds a CRLF to a last line without one, after dropping its trailing whitespace', () => {
    assert.equal(body('no line break'), 'no line break\r\n');
    assert.equal(body('x\r\nlast  \t'), 'x\r\nlast\r\n');
  });

  void it('reads a bare LF or bare CR as the CRLF the SMTP client will send', () => {
    assert.equal(body('a\nb\rc\r\n'), 'a\r\nb\r\nc\r\n');
    assert.equal(body('a\r\r\nb'), 'a\r\n\r\nb\r\n');
  });

  void it('keeps octets outside ASCII', () => {
    const raw = Buffer.from('Grüße,  Köln\r\n', 'utf8');
    assert.equal(relaxedBody(raw).toString('utf8'), 'Grüße, Köln\r\n');
  });

  void it('starts at the given offset (the first body octet)', () => {
    const raw = Buffer.from('Subject: x\r\n\r\nbody  text\r\n\r\n', 'latin1');
    assert.equal(relaxedBody(raw, 14).toString('latin1'), 'body text\r\n');
  });

  void it('handles a body of 200,000 whitespace characters and one letter', () => {
    assert.equal(body(`${' \t'.repeat(100_000)}x`), ' x\r\n');
  });

  void it('agrees with a plain reference on 2,000 random bodies as the SMTP client will send them', () => {
    // The reference: the body as it arrives (every line end CRLF, a final CRLF added, as the SMTP client
    // does), then RFC 6376 3.4.4 step by step with regular expressions (fine on these short inputs).
    const reference = (text: string): string => {
      let wire = text.replace(/\r\n|\r|\n/g, '\r\n');
      if (wire !== '' && !wire.endsWith('\r\n')) wire += '\r\n';
      const relaxed = wire
        .replace(/[ \t]+\r\n/g, '\r\n')
        .replace(/[ \t]+/g, ' ')
        .replace(/(\r\n)+$/, '\r\n');
      return relaxed === '\r\n' ? '' : relaxed;
    };
    const tokens = [' ', '  ', '\t', '\r\n', '\r', '\n', 'a', 'bc', '.', '\u00e9', '\u0000', '='];
    let state = 8463;
    const next = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 4294967296;
    };
    for (let n = 0; n < 2000; n++) {
      let text = '';
      const length = Math.floor(next() * 30);
      for (let i = 0; i < length; i++) text += tokens[Math.floor(next() * tokens.length)] ?? '';
      assert.equal(body(text), reference(text), `case ${n}: ${JSON.stringify(text)}`);
    }
  });
});

// RFC 8463 Appendix A: the Ed25519 key (A.1), its DNS record (A.2) and the signed message (A.3).
const RFC8463_SEED = 'nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=';
const RFC8463_RECORD = 'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=';
const RFC8463_HEADERS: readonly (readonly [string, string])[] = [
  ['From', ' Joe SixPack <joe@football.example.com>'],
  ['To', ' Suzie Q <suzie@shopping.example.net>'],
  ['Subject', ' Is dinner ready?'],
  ['Date', ' Fri, 11 Jul 2003 21:00:37 -0700 (PDT)'],
  ['Message-ID', ' <20030712040037.46341.5F8J@football.example.com>'],
];
const RFC8463_BODY = 'Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n';
/** The Ed25519 DKIM-Signature value as published, up to and with `b=`; its signature is below. */
const RFC8463_SIGNATURE_VALUE = [
  ' v=1; a=ed25519-sha256; c=relaxed/relaxed;',
  ' d=football.example.com; i=@football.example.com;',
  ' q=dns/txt; s=brisbane; t=1528637909; h=from : to :',
  ' subject : date : message-id : from : subject : date;',
  ' bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;',
  ' b=',
].join('\r\n');
const RFC8463_B = '/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==';

void describe('RFC 8463 Appendix A (ed25519-sha256)', () => {
  const [key] = loadDkimKeys([
    { domain: 'football.example.com', selector: 'brisbane', privateKey: RFC8463_SEED },
  ]);

  void it('imports the bare base64 seed and publishes the RFC public key', () => {
    assert.ok(key);
    assert.equal(key.algorithm, 'ed25519-sha256');
    assert.equal(dkimDnsRecord(key), RFC8463_RECORD);
  });

  void it('computes the published body hash', () => {
    assert.equal(bodyHash(RFC8463_BODY), '2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=');
  });

  void it('reproduces the published signature: Ed25519 over the SHA-256 of the relaxed headers', () => {
    assert.ok(key);
    // h=from:to:subject:date:message-id:from:subject:date; the second from, subject and date match nothing.
    const signed = RFC8463_HEADERS.map(([name, value]) => relaxedHeaderField(name, value)).join('');
    const own = `dkim-signature:${relaxedHeaderValue(RFC8463_SIGNATURE_VALUE)}`;
    const digest = createHash('sha256')
      .update(signed + own, 'latin1')
      .digest();
    assert.equal(sign(null, digest, key.privateKey).toString('base64'), RFC8463_B);
  });
});
