import type { Mailbox } from './address.js';
import type { Message } from './message.js';

/**
 * Headers Mailroom and the MIME composer add on their own (Date, Message-ID, MIME-Version, multipart
 * Content-Type lines with boundaries, closing boundaries), generously rounded up, in bytes.
 */
const FIXED_OVERHEAD_BYTES = 2048;
/** Part headers and boundary line of one MIME part, in bytes. */
const PART_OVERHEAD_BYTES = 256;
/** Encoded line length used by base64 and quoted-printable bodies, before CRLF. */
const BODY_LINE_CHARS = 76;
/** Payload bytes per encoded-word: 75-character words minus `=?UTF-8?X?` and `?=`. */
const ENCODED_WORD_PAYLOAD = 63;
/** `=?UTF-8?Q?` + `?=` + folding CRLF and space around each encoded-word. */
const ENCODED_WORD_OVERHEAD = 15;

/** Bytes of base64 with CRLF every 76 characters. */
function base64Bytes(decodedBytes: number): number {
  const encoded = 4 * Math.ceil(decodedBytes / 3);
  return encoded + 2 * Math.ceil(encoded / BODY_LINE_CHARS);
}

/**
 * Upper bound of quoted-printable output: printable ASCII stays one byte, a line break becomes CRLF,
 * anything else (including each UTF-8 byte of a non-ASCII character) becomes `=XX`; plus a soft line
 * break (`=` CRLF) per 73 characters.
 */
function quotedPrintableBytes(text: string): number {
  let encoded = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0x0a || unit === 0x0d) encoded += 2;
    else if (unit >= 0x20 && unit < 0x7f && unit !== 0x3d) encoded += 1;
    else if (unit < 0x80) encoded += 3;
    else if (unit < 0x800) encoded += 6;
    else if (unit >= 0xd800 && unit <= 0xdfff)
      encoded += 6; // half of a 4-byte character
    else encoded += 9;
  }
  return encoded + 3 * Math.ceil(encoded / (BODY_LINE_CHARS - 3));
}

/** A body is sent as quoted-printable or base64, whichever the composer picks: count the larger. */
function bodyBytes(text: string): number {
  return PART_OVERHEAD_BYTES + Math.max(quotedPrintableBytes(text), base64Bytes(Buffer.byteLength(text)));
}

/** A header value encoded entirely as Q encoded-words (3 bytes per UTF-8 byte), folded. */
function headerBytes(name: string, value: string): number {
  const payload = 3 * Buffer.byteLength(value);
  const words = Math.max(1, Math.ceil(payload / ENCODED_WORD_PAYLOAD));
  return name.length + 2 + payload + words * ENCODED_WORD_OVERHEAD + 2;
}

function mailboxHeaderBytes(name: string, mailbox: Mailbox): number {
  return headerBytes(name, mailbox.name ?? '') + mailbox.address.length + 3;
}

/**
 * Conservative size of the message as encoded MIME, in bytes: bodies at the worse of quoted-printable and
 * base64 (4/3 plus line breaks), attachments at base64, every header value as if fully encoded, plus fixed
 * structural overhead. Never smaller than what the composer produces, so a message that passes the limit
 * here also passes a relay's SIZE limit set to the same number.
 */
export function estimateMessageBytes(message: Message): number {
  let total = FIXED_OVERHEAD_BYTES;
  total += mailboxHeaderBytes('From', message.from);
  total += mailboxHeaderBytes('To', message.to);
  if (message.replyTo !== undefined) total += mailboxHeaderBytes('Reply-To', message.replyTo);
  total += headerBytes('Subject', message.subject);
  for (const [name, value] of message.headers) total += headerBytes(name, value);
  if (message.text !== undefined) total += bodyBytes(message.text);
  if (message.html !== undefined) total += bodyBytes(message.html);
  for (const attachment of message.attachments) {
    total += PART_OVERHEAD_BYTES;
    // The filename appears twice (Content-Type name and Content-Disposition filename).
    total += 2 * headerBytes('filename', attachment.filename);
    total += attachment.contentType.length + (attachment.contentId?.length ?? 0) + 32;
    total += base64Bytes(attachment.size);
  }
  return total;
}
