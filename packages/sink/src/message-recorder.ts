import { createHash, type Hash } from 'node:crypto';
import { parseHeaderBlock, type HeaderField } from './parse-header-block.js';

/**
 * Header bytes kept while looking for the end of the header block. A message whose header block is
 * longer is recorded with the fields found in the first this-many bytes (the hash still covers all).
 */
const MAX_HEADER_BYTES = 256 * 1024;
const BLANK_LINE = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/** What the recorder learned from one message. */
export interface RecordedContent {
  readonly sizeBytes: number;
  /** Hex SHA-256 of every byte of the message. */
  readonly sha256: string;
  readonly headers: readonly HeaderField[];
  readonly raw?: Buffer;
}

/**
 * Summarises a message while it streams in: byte count, SHA-256 and the header block, without
 * buffering the body (unless the raw bytes are asked for). This is the sink's hot path, so it does
 * no MIME parsing at all.
 */
export class MessageRecorder {
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  private head: Buffer = Buffer.alloc(0);
  private headerBlock: Buffer | undefined;
  private readonly rawChunks: Buffer[] | undefined;

  /**
   * @param keepRawUpToBytes keep the raw message while it is at most this many bytes long
   *   (0 = never keep it). A message that grows past the limit is recorded without its raw bytes.
   */
  constructor(private readonly keepRawUpToBytes: number) {
    this.rawChunks = keepRawUpToBytes > 0 ? [] : undefined;
  }

  write(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    if (this.rawChunks && this.size <= this.keepRawUpToBytes) this.rawChunks.push(chunk);
    if (this.headerBlock === undefined) this.scanForHeaderEnd(chunk);
  }

  finish(): RecordedContent {
    const block = this.headerBlock ?? this.head;
    const content = {
      sizeBytes: this.size,
      sha256: this.hash.digest('hex'),
      headers: parseHeaderBlock(block),
    };
    if (this.rawChunks && this.size <= this.keepRawUpToBytes) {
      return { ...content, raw: Buffer.concat(this.rawChunks, this.size) };
    }
    return content;
  }

  private scanForHeaderEnd(chunk: Buffer): void {
    // Search only the new bytes plus the three before them, so a blank line split across chunks is found.
    const from = Math.max(0, this.head.length - 3);
    this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    if (from === 0 && this.head.subarray(0, 2).equals(CRLF)) {
      // The message starts with the empty line: it has no header fields.
      this.headerBlock = Buffer.alloc(0);
      return;
    }
    const end = this.head.indexOf(BLANK_LINE, from);
    if (end !== -1) {
      this.headerBlock = this.head.subarray(0, end);
    } else if (this.head.length > MAX_HEADER_BYTES) {
      this.headerBlock = this.head.subarray(0, MAX_HEADER_BYTES);
    } else {
      return;
    }
    this.head = Buffer.alloc(0);
  }
}
