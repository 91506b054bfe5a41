import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import {
  encodeVerp,
  type FeedbackEventKind,
  type FeedbackReport,
  type VerpOptions,
} from '@mailroom/feedback';

/**
 * The feedback corpus (test/fixtures/feedback/): one .eml per report format, and expected.json with the
 * report each gives, the VERP settings its return paths are signed with, and the envelope recipients the
 * report arrived for when it matters.
 */
export interface CorpusEntry {
  readonly name: string;
  readonly raw: Buffer;
  readonly rcptTo?: readonly string[];
  readonly expected: FeedbackReport;
}

interface Manifest {
  readonly verp: VerpOptions;
  readonly reports: Record<string, { readonly rcptTo?: string[]; readonly expected: FeedbackReport }>;
}

const CORPUS = fileURLToPath(new URL('../../../fixtures/feedback/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${CORPUS}expected.json`, 'utf8')) as Manifest;

/** The corpus's VERP settings: the receiver under test checks return paths with them. */
export const CORPUS_VERP: VerpOptions = manifest.verp;
/** The feedback-loop address the corpus's ARF reports are sent to. */
export const COMPLAINTS_ADDRESS = 'fbl@example.com';

export function corpus(): CorpusEntry[] {
  return readdirSync(CORPUS)
    .filter((name) => name.endsWith('.eml'))
    .sort()
    .map((name) => {
      const entry = manifest.reports[name];
      if (entry === undefined) throw new Error(`${name} has no entry in expected.json`);
      return {
        name,
        raw: readFileSync(`${CORPUS}${name}`),
        ...(entry.rcptTo === undefined ? {} : { rcptTo: entry.rcptTo }),
        expected: entry.expected,
      };
    });
}

/** The event kind a report must give (bounces by class). */
export function expectedKind(report: FeedbackReport): FeedbackEventKind {
  if (report.kind === 'bounce') return report.bounceClass === 'hard' ? 'hard_bounce' : 'soft_bounce';
  return report.kind;
}

/**
 * Every occurrence of `from` in `text`, in any letter case, replaced by `to`: in upper case where the
 * occurrence was upper case (a return path an MTA upper-cased), as is elsewhere. Both must be ASCII.
 */
export function replaceCaseAware(text: string, from: string, to: string): string {
  const lower = text.toLowerCase();
  const needle = from.toLowerCase();
  let out = '';
  let at = 0;
  for (let hit = lower.indexOf(needle); hit >= 0; hit = lower.indexOf(needle, hit + needle.length)) {
    const found = text.slice(hit, hit + needle.length);
    out +=
      text.slice(at, hit) +
      (found === found.toUpperCase() && found !== found.toLowerCase() ? to.toUpperCase() : to);
    at = hit + needle.length;
  }
  return out + text.slice(at);
}

/**
 * The sample rewritten to name Mailroom message `id` instead of the corpus's: its signed return path
 * (wherever it appears, envelope recipients included) by the one `id` is sent with under `verp`, then every
 * other occurrence of the old id (Message-IDs, inline copies) by `id`. Ids and return paths have the same
 * length, so the MIME structure is unchanged. `returnPathVerp` signs the new return path with other settings
 * (a rotated secret: the return path then no longer checks out).
 */
export function rewriteSample(
  entry: CorpusEntry,
  id: string,
  verp: VerpOptions,
  returnPathVerp: VerpOptions = verp,
): { raw: Buffer; rcptTo?: string[]; returnPath: string } {
  const oldId = entry.expected.mailroomId;
  const returnPath = encodeVerp(id, returnPathVerp);
  if (oldId === undefined) throw new Error(`${entry.name} names no Mailroom message`);
  const rewrite = (text: string) =>
    replaceCaseAware(replaceCaseAware(text, encodeVerp(oldId, CORPUS_VERP), returnPath), oldId, id);
  return {
    raw: Buffer.from(rewrite(entry.raw.toString('latin1')), 'latin1'),
    ...(entry.rcptTo === undefined ? {} : { rcptTo: entry.rcptTo.map(rewrite) }),
    returnPath,
  };
}

/** What the receiver answered to one delivery. */
export interface DeliveryReply {
  /** The reply to the final dot, e.g. `250 2.0.0 Report received`; undefined when nothing was accepted. */
  readonly response?: string;
  readonly accepted: readonly string[];
  readonly rejected: readonly string[];
  /** Reply code of the failure, when the transaction failed (a refused RCPT, 451, 552, ...). */
  readonly errorCode?: number;
  readonly errorResponse?: string;
}

/**
 * Delivers `raw` to the receiver over SMTP (nodemailer, one connection), from the null sender `<>` as
 * MTAs send bounces unless `from` is given. Never throws for an SMTP refusal: it is in the reply.
 */
export async function deliver(
  port: number,
  rcptTo: readonly string[],
  raw: Buffer,
  options: { from?: string; tls?: { ca: string } } = {},
): Promise<DeliveryReply> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    name: 'mta.remote.example',
    ...(options.tls === undefined ? { ignoreTLS: true } : { requireTLS: true, tls: { ca: options.tls.ca } }),
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  try {
    const info = (await transport.sendMail({
      envelope: { from: options.from ?? '', to: [...rcptTo] },
      raw,
    })) as { response: string; accepted: string[]; rejected: string[] };
    return { response: info.response, accepted: info.accepted, rejected: info.rejected };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; rejected?: string[] };
    return {
      accepted: [],
      rejected: e.rejected ?? [...rcptTo],
      ...(e.responseCode === undefined ? {} : { errorCode: e.responseCode }),
      ...(e.response === undefined ? {} : { errorResponse: e.response }),
    };
  } finally {
    transport.close();
  }
}
