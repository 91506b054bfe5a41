import { simpleParser, type Attachment, type ParsedMail, type SimpleParserOptions } from 'mailparser';
import { deliveryStatus, type DeliveryStatus } from './delivery-status.js';
import {
  fieldValue,
  headerFields,
  messageHeaderFields,
  splitLines,
  type HeaderField,
} from './header-fields.js';
import { findAddresses, recipientAddress } from './recipient-address.js';
import { returnedCopy } from './returned-copy.js';

/** The parts of an inbound message that the readers work from. */
export interface ReportParts {
  /** The message's own header fields. */
  readonly headers: readonly HeaderField[];
  /** Address of its From, domain lower-cased. */
  readonly fromAddress?: string;
  readonly subject: string;
  /** Human-readable text (text/plain, or HTML as text), without the report parts. */
  readonly text: string;
  /** The first message/delivery-status (or message/global-delivery-status) part. */
  readonly dsn?: DeliveryStatus;
  /** Fields of the first message/feedback-report part. */
  readonly feedback?: readonly HeaderField[];
  /** The `report-type` parameter of a multipart/report, lower-case. */
  readonly reportType?: string;
  /** Header fields of the returned message: the attached part, else the inline copy in the text. */
  readonly original: readonly HeaderField[];
}

/** The MIME parts a report may have; real ones have fewer than 20 (Gmail's has 8). */
export const MAX_MIME_PARTS = 100;
/** Text of one report part that is read: a returned message's header block is never near it. */
const MAX_PART_CHARS = 256 * 1024;

const DSN_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const FEEDBACK_TYPES = new Set(['message/feedback-report']);
const ORIGINAL_TYPES = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/global-headers',
]);

/**
 * The parser keeps every report part (delivery-status, feedback-report, returned message) as an attachment
 * with its raw content, bounds the parts and header blocks it accepts, and skips the work only a mail
 * client needs (HTML rendering of text, link detection, image inlining, checksums).
 */
const PARSER_OPTIONS: SimpleParserOptions = {
  keepDeliveryStatus: true,
  ignoreEmbedded: true,
  skipTextToHtml: true,
  skipTextLinks: true,
  skipImageLinks: true,
  keepCidLinks: true,
  checksumAlgo: false,
  maxHtmlLengthToParse: MAX_PART_CHARS,
  maxChildNodes: MAX_MIME_PARTS,
  maxHeadSize: 64 * 1024,
};

/** Parses `raw` into its report parts; rejects when mailparser does (more than MAX_MIME_PARTS parts, ...). */
export async function reportParts(raw: Buffer): Promise<ReportParts> {
  return collect(await simpleParser(raw, PARSER_OPTIONS));
}

function collect(mail: ParsedMail): ReportParts {
  const headers = headerFields(splitLines(mail.headerLines.map((entry) => entry.line).join('\n'))).fields;
  const text = (mail.text ?? '').slice(0, MAX_PART_CHARS);
  let dsn: DeliveryStatus | undefined;
  let feedback: HeaderField[] | undefined;
  let original: HeaderField[] | undefined;
  for (const part of mail.attachments) {
    const type = part.contentType.toLowerCase();
    if (dsn === undefined && DSN_TYPES.has(type)) dsn = deliveryStatus(partText(part));
    else if (feedback === undefined && FEEDBACK_TYPES.has(type)) {
      feedback = headerFields(splitLines(partText(part))).fields;
    } else if (original === undefined && ORIGINAL_TYPES.has(type)) {
      original = messageHeaderFields(partText(part));
    }
  }
  if (original === undefined) {
    const copy = returnedCopy(text).copy;
    original = copy === undefined ? [] : messageHeaderFields(copy);
  }
  const fromAddress = recipientAddress(findAddresses(fieldValue(headers, 'from') ?? '', 1)[0]);
  const reportType = /report-type[ \t]{0,8}=[ \t]{0,8}"?([A-Za-z0-9-]{1,60})/i.exec(
    fieldValue(headers, 'content-type') ?? '',
  )?.[1];
  return {
    headers,
    ...(fromAddress === undefined ? {} : { fromAddress }),
    subject: mail.subject ?? '',
    text,
    ...(dsn === undefined ? {} : { dsn }),
    ...(feedback === undefined ? {} : { feedback }),
    ...(reportType === undefined ? {} : { reportType: reportType.toLowerCase() }),
    original,
  };
}

function partText(part: Attachment): string {
  const content =
    part.content.length > MAX_PART_CHARS ? part.content.subarray(0, MAX_PART_CHARS) : part.content;
  return content.toString('utf8');
}
