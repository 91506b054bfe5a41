import type { Generator } from './detect-generator.js';
import { splitLines } from './header-fields.js';
import { findAddresses, recipientAddress } from './recipient-address.js';
import { diagnosticText, enhancedStatusIn, refineStatus, replyStart } from './smtp-reply-text.js';

/** What a layout reader finds in a bounce's explanation text about its first recipient. */
export interface LayoutReading {
  readonly recipient?: string;
  readonly diagnostic?: string;
  readonly status?: string;
  /** The layout itself says this is a delay warning, not a failure. */
  readonly delayed?: boolean;
}

/** A plain-text bounce layout: the fixed sentence that identifies it, and how to read it. */
export interface TextLayout {
  /** The software whose template this is, when the layout belongs to one. */
  readonly generator?: Generator;
  /** A sentence only this layout's template writes. */
  readonly marker: RegExp;
  readonly read: (lines: readonly string[], text: string) => LayoutReading;
}

// Every pattern runs on text from the network: repetitions are bounded, or no two adjacent ones can match
// the same characters, so each costs linear time on any input.

/** `<user@example.net>: ...` (qmail, Yahoo, Postfix); Postfix adds `(expanded from <alias>)`. */
const ANGLE_RECIPIENT =
  /^[ \t]*<([^<>\s@]{1,64}@[^<>\s@]{1,255})>(?:[ \t]{0,8}\(expanded from <([^<>\s@]{1,64}@[^<>\s@]{1,255})>\))?:[ \t]*(.*)$/;

/** The layouts, tried in order; the first whose marker is in the text reads it. */
export const TEXT_LAYOUTS: readonly TextLayout[] = [
  { generator: 'qmail', marker: /This is the qmail-send program/i, read: angleBlock },
  {
    generator: 'yahoo',
    marker: /Sorry, we were unable to deliver your message to the following address/i,
    read: angleBlock,
  },
  {
    generator: 'postfix',
    marker:
      /This is the (?:mail system|Postfix program) at host|I'm sorry to have to inform you that (?:your message|the message returned)/i,
    read: angleBlock,
  },
  {
    generator: 'exim',
    marker: /This message was created automatically by mail delivery software/i,
    read: readExim,
  },
  {
    generator: 'sendmail',
    marker: /--- The following addresses had (?:permanent fatal|transient non-fatal) errors ---/i,
    read: readSendmail,
  },
  {
    generator: 'exchange',
    marker:
      /The following recipient\(s\) (?:cannot|could not) be reached:|Delivery has failed to these recipients or (?:groups|distribution lists):|Delivery is delayed to these recipients or (?:groups|distribution lists):/i,
    read: readExchange,
  },
  {
    // Gmail's plain-text notices before 2016, and the Windows SMTP service's (Hotmail's, of that era).
    marker: /Delivery to the following recipients? (?:failed|has been delayed)/i,
    read: readDeliveryToFollowing,
  },
];

/** The lines after `start` up to the first empty one. */
function paragraph(lines: readonly string[], start: number): string[] {
  const out: string[] = [];
  for (let i = start; i < lines.length && (lines[i] ?? '').trim() !== ''; i++) out.push(lines[i] ?? '');
  return out;
}

function nextNonEmpty(lines: readonly string[], start: number): number {
  let i = start;
  while (i < lines.length && (lines[i] ?? '').trim() === '') i++;
  return i;
}

function reading(parts: {
  recipient: string | undefined;
  diagnostic: string | undefined;
  status?: string | undefined;
  delayed?: boolean;
}): LayoutReading {
  return {
    ...(parts.recipient === undefined ? {} : { recipient: parts.recipient }),
    ...(parts.diagnostic === undefined ? {} : { diagnostic: parts.diagnostic }),
    ...(parts.status === undefined ? {} : { status: parts.status }),
    ...(parts.delayed === undefined ? {} : { delayed: parts.delayed }),
  };
}

/**
 * The SMTP reply in a block of explanation: what follows `said:` when the MTA quotes the remote host,
 * without Postfix's `(in reply to RCPT TO command)` and qmail's `Giving up on <ip>.`.
 */
function replyOf(block: string): string | undefined {
  const said = /\bsaid:[ \t\n]*/i.exec(block);
  const reply = said === null ? block : block.slice(said.index + said[0].length);
  return diagnosticText(
    reply
      .replace(/\n[ \t]*Giving up on [^\s]{1,255}[ \t]*$/i, '')
      .replace(/\s{0,8}\(in reply to\s[^()]{1,100}\)\s{0,8}$/i, ''),
  );
}

/** qmail, Yahoo and Postfix: `<address>:` then the explanation, on the same line or the next ones. */
function angleBlock(lines: readonly string[]): LayoutReading {
  const index = lines.findIndex((line) => ANGLE_RECIPIENT.test(line));
  if (index < 0) return {};
  const match = ANGLE_RECIPIENT.exec(lines[index] ?? '');
  // The address as sent (`expanded from`) is the one Mailroom knows.
  const recipient = recipientAddress(match?.[2] ?? match?.[1]);
  const block = [match?.[3] ?? '', ...paragraph(lines, index + 1)].join('\n');
  return reading({ recipient, diagnostic: replyOf(block) });
}

/** Exim: a heading, the address on its own line, then an indented paragraph ending in the SMTP reply. */
function readExim(lines: readonly string[]): LayoutReading {
  const index = lines.findIndex((line) =>
    /following address(?:\(es\)|es)? failed:|address(?:es)? to which the message has not yet been delivered (?:is|are):/i.test(
      line,
    ),
  );
  if (index < 0) return {};
  const at = nextNonEmpty(lines, index + 1);
  const recipient = findAddresses(lines[at] ?? '', 1)[0];
  const block = paragraph(lines, at + 1).join('\n');
  const start = replyStart(block);
  return reading({ recipient, diagnostic: diagnosticText(start < 0 ? block : block.slice(start)) });
}

/** Sendmail: the address under the heading, `(reason: ...)` below it; the transcript carries the status. */
function readSendmail(lines: readonly string[], text: string): LayoutReading {
  const index = lines.findIndex((line) => /The following addresses had/i.test(line));
  const at = nextNonEmpty(lines, index + 1);
  const block = paragraph(lines, at + 1).join('\n');
  const expanded = /\(expanded from:?[ \t]{0,8}<?([^<>\s@)]{1,64}@[^<>\s@)]{1,255})>?\)/i.exec(block)?.[1];
  const recipient = recipientAddress(expanded) ?? findAddresses(lines[at] ?? '', 1)[0];
  const diagnostic = diagnosticText(/\(reason:[ \t]{0,8}([^()]{1,1000})\)/i.exec(block)?.[1]);
  const transcript = text.slice(Math.max(0, text.search(/Transcript of session follows/i)));
  const status = enhancedStatusIn(diagnostic) ?? firstReplyStatus(transcript);
  return reading({ recipient, diagnostic, status, delayed: /transient non-fatal errors/i.test(text) });
}

/** The status of the first reply line that has one in a transcript (`<<< 550 5.7.1 ...`). */
function firstReplyStatus(text: string): string | undefined {
  for (const line of splitLines(text)) {
    const status = enhancedStatusIn(line.replace(/^[ \t]{0,8}<<<[ \t]{0,8}/, ''));
    if (status !== undefined) return status;
  }
  return undefined;
}

/**
 * Exchange and Office 365: the recipient under "The following recipient(s) cannot be reached:" (Exchange
 * 2003) or "Delivery has failed to these recipients or groups:" (2007 and later); the reply in
 * `<server #5.0.0 smtp;550 ...>` (2003), `Remote Server returned '...'` or the `#550 5.1.1 ... ##` line of
 * the diagnostic section (2007 and later), else the explanation under the address.
 */
function readExchange(lines: readonly string[], text: string): LayoutReading {
  const index = lines.findIndex((line) =>
    /recipient\(s\) (?:cannot|could not) be reached:|to these recipients or (?:groups|distribution lists):/i.test(
      line,
    ),
  );
  const at = nextNonEmpty(lines, index + 1);
  const recipient = findAddresses(lines[at] ?? '', 1)[0];
  const server = serverLine(lines);
  const explanation = paragraph(lines, at + 1).filter((line) => !line.trim().startsWith('<'));
  const diagnostic = diagnosticText(
    server?.reply ?? remoteServerReturned(lines) ?? hashLine(lines) ?? explanation.join('\n'),
  );
  return reading({
    recipient,
    diagnostic,
    status: refineStatus(server?.status, diagnostic),
    delayed: /Delivery is delayed to these recipients/i.test(text),
  });
}

/**
 * Exchange 2003's `<exch.example.org #5.0.0 smtp;550 5.1.1 <user@example.org>... User unknown>`: the
 * status after `#`, and the remote reply after `smtp;` when the failure came from another server.
 */
function serverLine(lines: readonly string[]): { status: string; reply?: string } | undefined {
  for (const line of lines) {
    const text = line.trim();
    if (!text.startsWith('<')) continue;
    const match = /#([245]\.\d{1,3}\.\d{1,3})(?![\d.])/.exec(text);
    if (match === null) continue;
    const status = enhancedStatusIn(match[1]) ?? '';
    const rest = text.slice(match.index + match[0].length).trim();
    if (!/^smtp;/i.test(rest)) return { status };
    return { status, reply: rest.replace(/>$/, '') };
  }
  return undefined;
}

/** `Remote Server returned '550 5.1.1 ...'`: the quoted reply, or its quoted `<... #5.0.0 smtp;550 ...>`. */
function remoteServerReturned(lines: readonly string[]): string | undefined {
  const marker = "remote server returned '";
  const line = lines.find((candidate) => candidate.toLowerCase().includes(marker));
  if (line === undefined) return undefined;
  const start = line.toLowerCase().indexOf(marker) + marker.length;
  const end = line.lastIndexOf("'");
  const quoted = end > start ? line.slice(start, end) : line.slice(start);
  return /smtp;/i.test(quoted) ? quoted.slice(quoted.search(/smtp;/i)).replace(/>$/, '') : quoted;
}

/** `#554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain ##` below "Diagnostic information". */
function hashLine(lines: readonly string[]): string | undefined {
  const section = lines.findIndex((line) => /Diagnostic information for administrators/i.test(line));
  if (section < 0) return undefined;
  const line = lines
    .slice(section)
    .find((candidate) => /^[ \t]{0,8}#?[ \t]{0,8}[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b/.test(candidate));
  if (line === undefined) return undefined;
  const reply = line.trim().replace(/^#/, '');
  const end = reply.indexOf('##');
  return (end < 0 ? reply : reply.slice(0, end)).trim();
}

/**
 * "Delivery to the following recipient failed permanently:" (Gmail before 2016) and "Delivery to the
 * following recipients failed." (the Windows SMTP service, Hotmail's of that era): the address under the
 * heading, then the server's reply after "The error that the other server returned was:".
 */
function readDeliveryToFollowing(lines: readonly string[], text: string): LayoutReading {
  const index = lines.findIndex((line) => /Delivery to the following recipients? /i.test(line));
  const at = nextNonEmpty(lines, index + 1);
  const recipient = findAddresses(lines[at] ?? '', 1)[0];
  const returned = lines.findIndex((line) => /The error that the other server returned was:/i.test(line));
  const heading =
    returned >= 0
      ? returned
      : lines.findIndex((line) => /Technical details of (?:permanent|temporary) failure:/i.test(line));
  const block = heading < 0 ? [] : paragraph(lines, nextNonEmpty(lines, heading + 1));
  const replyLine = block.findIndex((line) => replyStart(line) >= 0);
  const diagnostic = diagnosticText((replyLine < 0 ? block : block.slice(replyLine)).join('\n'));
  return reading({
    recipient,
    diagnostic,
    delayed: /has been delayed|Technical details of temporary failure/i.test(text),
  });
}
