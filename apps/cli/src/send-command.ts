import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { MailroomClient } from '@mailroom/client';
import { ValidationError } from '@mailroom/core';
import type { RedisTarget } from '@mailroom/queue';

export interface SendFlags {
  json?: string;
  from?: string;
  to?: string;
  replyTo?: string;
  subject?: string;
  text?: string;
  html?: string;
  textFile?: string;
  htmlFile?: string;
  header?: string[];
  attach?: string[];
  tag?: string[];
  /** Redis: a URL, or a cluster or Sentinel spec (from MAILROOM_REDIS_*). */
  redisUrl: RedisTarget;
  prefix?: string;
  maxAgeSeconds?: string;
}

/** A problem with the command line itself, reported as `--flag: reason`. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function readText(path: string, flag: string): string {
  try {
    return path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Builds the message input from flags (or a JSON file), without validating it: the client does that. */
export function messageFromFlags(flags: SendFlags): unknown {
  if (flags.json !== undefined) {
    const text = readText(flags.json, '--json');
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new UsageError(`--json: ${flags.json} is not valid JSON (${(err as Error).message})`);
    }
  }
  const headers: Record<string, string> = {};
  for (const line of flags.header ?? []) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header: expected "Name: value", got "${line}"`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  const attachments = (flags.attach ?? []).map((path) => {
    let content: Buffer;
    try {
      content = readFileSync(path);
    } catch (err) {
      throw new UsageError(
        `--attach: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    return { filename: basename(path), content: content.toString('base64') };
  });
  const text = flags.textFile !== undefined ? readText(flags.textFile, '--text-file') : flags.text;
  const html = flags.htmlFile !== undefined ? readText(flags.htmlFile, '--html-file') : flags.html;
  return {
    from: flags.from,
    to: flags.to,
    ...(flags.replyTo === undefined ? {} : { replyTo: flags.replyTo }),
    subject: flags.subject,
    ...(text === undefined ? {} : { text }),
    ...(html === undefined ? {} : { html }),
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    ...(attachments.length > 0 ? { attachments } : {}),
    ...(flags.tag && flags.tag.length > 0 ? { tags: flags.tag } : {}),
  };
}

/** `mailroom send`: validate, enqueue, print the receipt as JSON. Exit 2 for bad input, naming each field. */
export async function sendCommand(
  flags: SendFlags,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let input: unknown;
  try {
    input = messageFromFlags(flags);
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let maxAgeMs: number | undefined;
  if (flags.maxAgeSeconds !== undefined) {
    const n = Number(flags.maxAgeSeconds);
    if (!Number.isInteger(n) || n <= 0) {
      err.write(`--max-age-seconds: must be a positive integer (got "${flags.maxAgeSeconds}")\n`);
      return 2;
    }
    maxAgeMs = n * 1000;
  }
  const client = new MailroomClient({
    redis: flags.redisUrl,
    ...(flags.prefix === undefined ? {} : { prefix: flags.prefix }),
    ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
  });
  try {
    await client.ready();
    const receipt = await client.send(input);
    out.write(`${JSON.stringify(receipt)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof ValidationError) {
      for (const issue of e.issues) err.write(`${issue.field}: ${issue.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    await client.close();
  }
}
