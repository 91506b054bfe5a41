import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { CampaignRecipientInput } from '@mailroom/client';
import { ApiError } from './api-error.js';

/** Media types a recipient upload may have, and the reader each one gets. */
export const UPLOAD_MEDIA_TYPES = {
  'text/csv': 'csv',
  'application/x-ndjson': 'jsonl',
  'application/jsonl': 'jsonl',
} as const;

export function tooLarge(limit: number): ApiError {
  return new ApiError('ERR_PAYLOAD_TOO_LARGE', `the upload is larger than ${limit} bytes`);
}

/** The request body as a stream for a recipient reader, cut off cleanly at `limit` bytes. */
export interface BoundedBody {
  readonly stream: Readable;
  /** Why the body was cut short (too large, aborted, failed), or undefined while it is whole. */
  problem(): Error | undefined;
  /** Stops reading the request (its rest is never read: the connection is closed after the answer). */
  release(): void;
}

/**
 * Copies the request body into a stream that always ends cleanly: at the end of the body, or as soon as
 * more than `limit` bytes arrived or the client went away, recording why. Recipient readers then finish on
 * their own (a reader whose source errors could wait forever), and the caller decides from `problem()`.
 * The request itself is never destroyed here, so an error can still be answered before the connection
 * closes.
 */
export function boundedBody(raw: IncomingMessage, limit: number): BoundedBody {
  const stream = new PassThrough();
  let seen = 0;
  let problem: Error | undefined;
  const stop = (why: Error): void => {
    if (problem !== undefined) return;
    problem = why;
    raw.pause();
    raw.off('data', onData);
    stream.end();
  };
  const onData = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen > limit) return stop(tooLarge(limit));
    if (!stream.write(chunk)) raw.pause();
  };
  stream.on('drain', () => {
    if (problem === undefined) raw.resume();
  });
  raw.on('data', onData);
  raw.once('end', () => {
    if (problem === undefined) stream.end();
  });
  raw.once('error', () => stop(new ApiError('ERR_BAD_REQUEST', 'the upload failed while it was being read')));
  raw.once('close', () => {
    if (!raw.complete)
      stop(new ApiError('ERR_BAD_REQUEST', 'the connection closed before the end of the upload'));
  });
  return {
    stream,
    problem: () => problem,
    release: () => {
      raw.off('data', onData);
      raw.pause();
      stream.destroy();
    },
  };
}

/** Recipients past `max` are yielded as refusals (each counted), so an upload never grows past the limit. */
export async function* limitRecipients(
  source: AsyncIterable<CampaignRecipientInput>,
  max: number,
): AsyncGenerator<CampaignRecipientInput> {
  let read = 0;
  for await (const recipient of source) {
    read += 1;
    yield read > max
      ? { to: undefined, parseError: `over the limit of ${max} recipients per upload` }
      : recipient;
  }
}
