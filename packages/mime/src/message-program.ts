import {
  ConfigError,
  DEFAULT_MAX_MESSAGE_BYTES,
  ValidationError,
  WHOLE_MESSAGE_FIELD,
  type Attachment,
  type FieldIssue,
  type Mailbox,
} from '@mailroom/core';
import { extraHeader, subjectHeader } from './header-fields.js';
import { foldHeader, formatMailbox } from './header-encoding.js';
import {
  buildMimeTree,
  compileMimeTree,
  joinBuffers,
  textPieces,
  type Piece,
  type TextSource,
} from './mime-parts.js';
import { idAndDateHeaders, recipientHeaders, toHeader, type RecipientFields } from './recipient-fields.js';
import { encodeTextBody } from './text-body.js';

/** A subject that is either fixed or rendered per recipient. */
export interface SubjectSource {
  readonly staticText: string | undefined;
  render(vars: object): string;
}

/** Everything a program is built from; subject and bodies may be merge templates or literal text. */
export interface ProgramParts {
  readonly from: Mailbox;
  readonly replyTo?: Mailbox;
  readonly subject: SubjectSource;
  readonly text?: TextSource;
  readonly html?: TextSource;
  readonly headers: readonly (readonly [name: string, value: string])[];
  /** Header lines Mailroom itself adds after the template's (Feedback-ID), CRLF-terminated. */
  readonly mailroomHeaders?: { readonly names: readonly string[]; readonly lines: string };
  readonly attachments: readonly Attachment[];
}

const MIME_VERSION = Buffer.from('MIME-Version: 1.0\r\n', 'latin1');

/** An error thrown by a template while rendering, as an issue naming its field. */
function renderField(
  source: { render(vars: object): string },
  field: string,
  vars: object,
  issues: FieldIssue[],
): string | undefined {
  try {
    return source.render(vars);
  } catch (err) {
    issues.push({
      field,
      message: `could not be rendered: ${err instanceof Error ? err.message : String(err)}`,
    });
    return undefined;
  }
}

/**
 * A message whose static parts are encoded once. render() fills in the recipient's headers, renders the
 * parts that have merge fields, encodes them and concatenates precomputed Buffers: CRLF line ends, not
 * dot-stuffed (the SMTP client does that).
 */
export class MessageProgram {
  /** From, Reply-To and a fixed Subject. */
  private readonly fixedHead: Buffer;
  private readonly subject: SubjectSource | undefined;
  /** The template's extra headers. */
  private readonly templateHeaders: Buffer;
  private readonly templateHeaderNames: ReadonlySet<string>;
  /** MIME-Version, then the MIME tree. */
  private readonly pieces: readonly Piece[];
  private readonly maxMessageBytes: number;

  /** Throws ValidationError for parts that cannot be written, ConfigError for a bad maxMessageBytes. */
  constructor(parts: ProgramParts, maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES) {
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes <= 0) {
      throw new ConfigError([
        { field: 'maxMessageBytes', message: `must be a positive integer (got ${maxMessageBytes})` },
      ]);
    }
    this.maxMessageBytes = maxMessageBytes;
    const issues: FieldIssue[] = [];
    let head = foldHeader('From', formatMailbox(parts.from));
    if (parts.replyTo !== undefined) head += foldHeader('Reply-To', formatMailbox(parts.replyTo));
    if (parts.subject.staticText !== undefined) head += subjectHeader(parts.subject.staticText, issues) ?? '';
    this.subject = parts.subject.staticText === undefined ? parts.subject : undefined;
    this.fixedHead = Buffer.from(head, 'latin1');

    let extra = '';
    const names = new Set<string>();
    for (const [name, value] of parts.headers) {
      names.add(name.toLowerCase());
      extra += extraHeader(name, value, `headers.${name}`, issues) ?? '';
    }
    if (parts.mailroomHeaders !== undefined) {
      for (const name of parts.mailroomHeaders.names) names.add(name.toLowerCase());
      extra += parts.mailroomHeaders.lines;
    }
    this.templateHeaders = Buffer.from(extra, 'latin1');
    this.templateHeaderNames = names;

    const tree = buildMimeTree(parts.text, parts.html, parts.attachments);
    this.pieces = joinBuffers([MIME_VERSION, ...compileMimeTree(tree, issues)]);
    if (issues.length > 0) throw new ValidationError(issues);

    let fixedBytes = this.fixedHead.length + this.templateHeaders.length;
    for (const piece of this.pieces) if (Buffer.isBuffer(piece)) fixedBytes += piece.length;
    if (fixedBytes > maxMessageBytes)
      throw new ValidationError([sizeIssue(fixedBytes, maxMessageBytes, 'at least')]);
  }

  /** The message for one recipient. Throws ValidationError naming the field at fault. */
  render(fields: RecipientFields): Buffer {
    const issues: FieldIssue[] = [];
    const vars: object = fields.vars ?? {};
    let head = toHeader(fields.to, issues) ?? '';
    if (this.subject !== undefined) {
      const subject = renderField(this.subject, 'subject', vars, issues);
      if (subject !== undefined) head += subjectHeader(subject, issues) ?? '';
    }
    head += idAndDateHeaders(fields.messageId, fields.date, issues) ?? '';
    const extra = recipientHeaders(fields.headers, this.templateHeaderNames, issues);
    if (issues.length > 0) throw new ValidationError(issues);

    const chunks: Buffer[] = [this.fixedHead, Buffer.from(head, 'latin1'), this.templateHeaders];
    if (extra !== '') chunks.push(Buffer.from(extra, 'latin1'));
    for (const piece of this.pieces) {
      if (Buffer.isBuffer(piece)) {
        chunks.push(piece);
        continue;
      }
      const text = renderField(piece.source, piece.source.field, vars, issues);
      if (text === undefined) continue;
      const encoded = encodeTextBody(text);
      textPieces(encoded, piece.headerFor[encoded.encoding], piece.atRoot, chunks);
    }
    if (issues.length > 0) throw new ValidationError(issues);
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    if (total > this.maxMessageBytes)
      throw new ValidationError([sizeIssue(total, this.maxMessageBytes, 'exactly')]);
    return Buffer.concat(chunks, total);
  }
}

function sizeIssue(size: number, limit: number, how: 'at least' | 'exactly'): FieldIssue {
  return {
    field: WHOLE_MESSAGE_FIELD,
    message: `is ${how} ${size} bytes as encoded MIME, over the limit of ${limit} bytes`,
  };
}
