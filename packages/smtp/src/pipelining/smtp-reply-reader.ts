/** The reader gave up on a reply longer than its limit (a peer that never ends a reply). */
export class SmtpReplyTooLargeError extends Error {
  override readonly name = 'SmtpReplyTooLargeError';
  readonly code = 'EPROTOCOL';
  constructor(readonly limitBytes: number) {
    super('Server response exceeds maximum allowed size');
  }
}

/** Longest reply kept while it is being received, in bytes; far above any real reply. */
export const MAX_REPLY_BYTES = 1024 * 1024;

const CONTINUATION = /^\d+-/;

/**
 * Cuts the bytes a server sends into complete SMTP replies (RFC 5321 section 4.2). The lines of a
 * multi-line reply are joined with `\n` and CRs dropped, as nodemailer reports them, so the two senders give
 * classification the same `response` text. Empty lines between replies are skipped.
 */
export class SmtpReplyReader {
  /** The line being received (latin1: one char per byte, decoded once the reply is complete). */
  #remainder = '';
  /** Lines of the reply being received, when it is a multi-line reply. */
  #lines: string[] = [];
  #pendingBytes = 0;

  constructor(private readonly maxReplyBytes = MAX_REPLY_BYTES) {}

  /** Feeds bytes from the server; returns the replies they complete, in order. */
  push(chunk: Buffer): string[] {
    const data = chunk.toString('latin1');
    if (!data.includes('\n')) {
      this.#remainder += data;
      this.#check(this.#remainder.length);
      return [];
    }
    const lines = (this.#remainder + data).split('\n');
    this.#remainder = lines.pop() ?? '';
    this.#check(this.#remainder.length);
    const replies: string[] = [];
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (this.#lines.length === 0 && line.trim() === '') continue;
      this.#lines.push(line);
      this.#pendingBytes += line.length + 1;
      this.#check(this.#pendingBytes);
      if (CONTINUATION.test(line)) continue;
      replies.push(decode(this.#lines.join('\n')));
      this.#lines = [];
      this.#pendingBytes = 0;
    }
    return replies;
  }

  /** What was received of a reply that is not complete yet (trimmed, decoded), or ''. */
  get partial(): string {
    return decode([...this.#lines, this.#remainder].join('\n').trim());
  }

  /** Forgets everything received so far and returns how many bytes that was. */
  reset(): number {
    const discarded = this.#remainder.length + this.#pendingBytes;
    this.#remainder = '';
    this.#lines = [];
    this.#pendingBytes = 0;
    return discarded;
  }

  #check(bytes: number): void {
    if (bytes > this.maxReplyBytes) {
      this.reset();
      throw new SmtpReplyTooLargeError(this.maxReplyBytes);
    }
  }
}

/** Reply text is UTF-8 in practice; bytes that are not valid UTF-8 stay latin1 (as in nodemailer). */
function decode(latin1: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(latin1)) return latin1;
  const utf8 = Buffer.from(latin1, 'latin1').toString('utf8');
  return utf8.includes('\uFFFD') ? latin1 : utf8;
}
