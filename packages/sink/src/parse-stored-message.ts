import type { ParsedMail } from 'mailparser';
import type { ReceivedMessage } from './received-message.js';
import { SinkNoRawError } from './sink-error.js';

/**
 * Parses a stored message in full with mailparser (body, attachments, decoded headers). Only for
 * tests and tools: it needs a sink started with `keepRaw`, and mailparser is loaded on first use so
 * the sink's hot path never pays for it.
 */
export async function parseStoredMessage(message: ReceivedMessage): Promise<ParsedMail> {
  if (message.raw === undefined) throw new SinkNoRawError(message.seq);
  const { simpleParser } = await import('mailparser');
  return simpleParser(message.raw);
}
