import libmime from 'libmime';
import type { Attachment, FieldIssue } from '@mailroom/core';
import { wrapBase64 } from './base64-lines.js';
import { Boundaries } from './boundaries.js';
import { encodeHeaderText, encodeWords, foldHeader } from './header-encoding.js';
import { encodeTextBody, type EncodedText, type TextTransferEncoding } from './text-body.js';

/** A text part's body: fixed, or rendered per recipient. */
export interface TextSource {
  readonly field: 'text' | 'html';
  /** Set when the part has no merge fields: encoded once. */
  readonly staticText: string | undefined;
  render(vars: object): string;
}

/** The MIME tree of a message, as nodemailer's MailComposer builds it. */
export type MimeNode =
  | { readonly kind: 'text'; readonly contentType: string; readonly source: TextSource }
  | { readonly kind: 'attachment'; readonly attachment: Attachment; readonly index: number }
  | { readonly kind: 'multipart'; readonly contentType: string; readonly children: readonly MimeNode[] };

/**
 * A rendered part whose body depends on the recipient: its Content-Type and Content-Transfer-Encoding lines
 * are precomputed for each encoding the body may need.
 */
export interface TextSlot {
  readonly source: TextSource;
  /** Part header block (ending with the empty line) per transfer encoding. */
  readonly headerFor: Readonly<Record<TextTransferEncoding, Buffer>>;
  /** The root part of a single-part message: the message must end with CRLF. */
  readonly atRoot: boolean;
}

export type Piece = Buffer | TextSlot;

const CRLF = Buffer.from('\r\n', 'latin1');
const TEXT_ENCODINGS: readonly TextTransferEncoding[] = ['7bit', 'quoted-printable', 'base64'];

function textPartHeader(contentType: string, encoding: TextTransferEncoding): string {
  return `Content-Type: ${contentType}\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n`;
}

/** Pieces of an encoded text part: header block, body, and the final CRLF of a single-part message. */
export function textPieces(encoded: EncodedText, header: Buffer, atRoot: boolean, out: Buffer[]): void {
  out.push(header, encoded.body);
  const { body } = encoded;
  if (atRoot && (body.length < 2 || body[body.length - 2] !== 0x0d || body[body.length - 1] !== 0x0a)) {
    out.push(CRLF);
  }
}

/** The `name=` parameter of an attachment's Content-Type, as nodemailer writes it (encoded-words, quoted). */
function nameParameter(filename: string): string {
  // A quote is encoded too (as nodemailer does): inside the quoted parameter it would need escaping.
  const encoded = filename.includes('"') ? encodeWords(filename) : encodeHeaderText(filename);
  return encoded !== filename || /[\s'"\\;:/=(),<>@[\]?]|^-/.test(encoded)
    ? JSON.stringify(encoded)
    : encoded;
}

/** True for message/* content that may go out unencoded: ASCII, no NUL, CRLF lines of at most 998 octets. */
function isSevenBitMessage(bytes: Buffer): boolean {
  let column = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (byte === 0 || byte > 0x7f) return false;
    if (byte === 0x0a) {
      if (bytes[i - 1] !== 0x0d) return false;
      column = 0;
    } else if (byte === 0x0d) {
      if (bytes[i + 1] !== 0x0a) return false;
    } else if (++column > 998) return false;
  }
  return true;
}

/**
 * Header block and body of an attachment, computed once: base64 wrapped at 76, except message/* parts,
 * which RFC 2046 5.2.1 forbids to encode: those go as 7bit when they are 7-bit CRLF text, else an issue.
 */
function attachmentPart(attachment: Attachment, index: number, issues: FieldIssue[]): Buffer[] {
  const { contentType, filename, contentId } = attachment;
  const isMessage = contentType.startsWith('message/');
  const disposition =
    isMessage || (contentId !== undefined && contentType.startsWith('image/')) ? 'inline' : 'attachment';
  let body: Buffer;
  let encoding: string;
  if (isMessage) {
    body = Buffer.from(attachment.content, 'base64');
    encoding = '7bit';
    if (!isSevenBitMessage(body)) {
      issues.push({
        field: `attachments[${index}].content`,
        message: `${contentType} must be 7-bit text with CRLF lines of at most 998 octets (it cannot be base64-encoded)`,
      });
    }
  } else {
    body = wrapBase64(attachment.content);
    encoding = 'base64';
  }
  let header = foldHeader('Content-Type', `${contentType}; name=${nameParameter(filename)}`);
  if (contentId !== undefined) header += foldHeader('Content-ID', `<${contentId}>`);
  header += `Content-Transfer-Encoding: ${encoding}\r\n`;
  header += foldHeader(
    'Content-Disposition',
    libmime.buildHeaderValue({ value: disposition, params: { filename } }),
  );
  return [Buffer.from(`${header}\r\n`, 'latin1'), body];
}

/**
 * Chooses the tree exactly as MailComposer does: text and html in multipart/alternative; html with
 * Content-ID attachments in multipart/related; any other attachment puts everything in multipart/mixed.
 */
export function buildMimeTree(
  text: TextSource | undefined,
  html: TextSource | undefined,
  attachments: readonly Attachment[],
): MimeNode {
  const indexed = attachments.map((attachment, index) => ({
    kind: 'attachment' as const,
    attachment,
    index,
  }));
  const related = html === undefined ? [] : indexed.filter((a) => a.attachment.contentId !== undefined);
  const attached = html === undefined ? indexed : indexed.filter((a) => a.attachment.contentId === undefined);
  const textNode: MimeNode | undefined =
    text === undefined ? undefined : { kind: 'text', contentType: 'text/plain; charset=utf-8', source: text };
  let htmlNode: MimeNode | undefined =
    html === undefined ? undefined : { kind: 'text', contentType: 'text/html; charset=utf-8', source: html };
  if (htmlNode !== undefined && related.length > 0) {
    htmlNode = {
      kind: 'multipart',
      contentType: 'multipart/related; type="text/html"',
      children: [htmlNode, ...related],
    };
  }
  let body: MimeNode;
  if (textNode !== undefined && htmlNode !== undefined) {
    body = { kind: 'multipart', contentType: 'multipart/alternative', children: [textNode, htmlNode] };
  } else {
    const only = textNode ?? htmlNode;
    if (only === undefined) throw new TypeError('a message needs a text or html part');
    body = only;
  }
  if (attached.length === 0) return body;
  return { kind: 'multipart', contentType: 'multipart/mixed', children: [body, ...attached] };
}

/**
 * The tree as a list of pieces: Buffers for everything known now (headers, boundaries, attachments, text
 * without merge fields) and slots for the parts rendered per recipient. Adjacent Buffers are joined.
 */
export function compileMimeTree(root: MimeNode, issues: FieldIssue[]): Piece[] {
  const boundaries = new Boundaries();
  const pieces: Piece[] = [];
  const emit = (node: MimeNode, atRoot: boolean): void => {
    switch (node.kind) {
      case 'text': {
        const headerFor = {} as Record<TextTransferEncoding, Buffer>;
        for (const encoding of TEXT_ENCODINGS) {
          headerFor[encoding] = Buffer.from(textPartHeader(node.contentType, encoding), 'latin1');
        }
        const { staticText } = node.source;
        if (staticText === undefined) {
          pieces.push({ source: node.source, headerFor, atRoot });
        } else {
          const encoded = encodeTextBody(staticText);
          const out: Buffer[] = [];
          textPieces(encoded, headerFor[encoded.encoding], atRoot, out);
          pieces.push(...out);
        }
        return;
      }
      case 'attachment':
        pieces.push(...attachmentPart(node.attachment, node.index, issues));
        return;
      case 'multipart': {
        const boundary = boundaries.create();
        const header = foldHeader('Content-Type', `${node.contentType}; boundary="${boundary}"`);
        pieces.push(Buffer.from(`${header}\r\n`, 'latin1'));
        node.children.forEach((child, i) => {
          pieces.push(Buffer.from(`${i > 0 ? '\r\n' : ''}--${boundary}\r\n`, 'latin1'));
          emit(child, false);
        });
        pieces.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'));
        return;
      }
    }
  };
  emit(root, true);
  return joinBuffers(pieces);
}

/** Joins runs of adjacent Buffers so a render concatenates as few pieces as possible. */
export function joinBuffers(pieces: readonly Piece[]): Piece[] {
  const joined: Piece[] = [];
  let run: Buffer[] = [];
  const flush = (): void => {
    if (run.length === 1) joined.push(run[0] as Buffer);
    else if (run.length > 1) joined.push(Buffer.concat(run));
    run = [];
  };
  for (const piece of pieces) {
    if (Buffer.isBuffer(piece)) run.push(piece);
    else {
      flush();
      joined.push(piece);
    }
  }
  flush();
  return joined;
}
