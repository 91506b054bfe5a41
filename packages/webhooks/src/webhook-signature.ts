import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries the timestamp and the signatures: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`. */
export const SIGNATURE_HEADER = 'Mailroom-Signature';
/** The ids of the events in the body, comma-separated, in body order. */
export const EVENT_ID_HEADER = 'Mailroom-Event-Id';
/** The id of the delivery (the queued job): the same on every retry of the same body. */
export const DELIVERY_ID_HEADER = 'Mailroom-Delivery-Id';
/** Which try of the delivery this request is, from 1. */
export const DELIVERY_ATTEMPT_HEADER = 'Mailroom-Delivery-Attempt';

/** A signed request older (or further in the future) than this is refused by default, in seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** Headers beyond this many `key=value` parts are not read (a bound on the work a forged header can cause). */
const MAX_HEADER_PARTS = 16;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

type Body = string | Uint8Array;

/** HMAC-SHA256 of `${timestamp}.${rawBody}` under `secret`, in lower-case hex. */
export function computeWebhookSignature(rawBody: Body, secret: string, timestamp: number): string {
  const hmac = createHmac('sha256', secret);
  hmac.update(`${timestamp}.`);
  hmac.update(rawBody);
  return hmac.digest('hex');
}

/**
 * The `Mailroom-Signature` value for a body: one `v1=` per secret, so that during a rotation a receiver
 * holding either the old or the new secret can verify.
 */
export function signWebhookPayload(rawBody: Body, secrets: readonly string[], timestamp: number): string {
  if (secrets.length === 0) throw new Error('at least one signing secret is needed');
  return [
    `t=${timestamp}`,
    ...secrets.map((s) => `v1=${computeWebhookSignature(rawBody, s, timestamp)}`),
  ].join(',');
}

export interface VerifyOptions {
  /** Largest accepted difference between the signed timestamp and `now`, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The current time in ms since the epoch (default `Date.now()`). */
  now?: number;
}

/** Why a signature was refused. */
export type SignatureProblem = 'malformed' | 'outside_tolerance' | 'no_match';

export type VerifyResult =
  | { readonly ok: true; readonly timestamp: number }
  | { readonly ok: false; readonly reason: SignatureProblem };

/**
 * Checks a request from Mailroom: `rawBody` exactly as received (before any JSON parsing), the
 * `Mailroom-Signature` header and the endpoint's secret(s). It passes when the timestamp is within
 * `toleranceSeconds` of `now` (replays of an old request fail) and some `v1=` signature matches some secret.
 * The comparison is constant-time.
 */
export function verifyWebhookSignature(
  rawBody: Body,
  header: string | null | undefined,
  secrets: string | readonly string[],
  options: VerifyOptions = {},
): VerifyResult {
  const parsed = parseSignatureHeader(header);
  if (parsed === undefined) return { ok: false, reason: 'malformed' };
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - parsed.timestamp) > tolerance) return { ok: false, reason: 'outside_tolerance' };
  const keys = typeof secrets === 'string' ? [secrets] : secrets;
  let match = false;
  for (const secret of keys) {
    const expected = Buffer.from(computeWebhookSignature(rawBody, secret, parsed.timestamp), 'hex');
    for (const candidate of parsed.signatures) {
      // Every pair is compared (no early exit), each in constant time.
      if (timingSafeEqual(expected, candidate)) match = true;
    }
  }
  return match ? { ok: true, timestamp: parsed.timestamp } : { ok: false, reason: 'no_match' };
}

/** The timestamp and the `v1` signatures of a header; undefined when it is not one Mailroom writes. */
function parseSignatureHeader(
  header: string | null | undefined,
): { timestamp: number; signatures: Buffer[] } | undefined {
  if (typeof header !== 'string' || header.length === 0) return undefined;
  const parts = header.split(',', MAX_HEADER_PARTS + 1);
  if (parts.length > MAX_HEADER_PARTS) return undefined;
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(value)) return undefined;
      timestamp = Number(value);
    } else if (key === 'v1') {
      const hex = value.toLowerCase();
      if (!HEX_SHA256.test(hex)) return undefined;
      signatures.push(Buffer.from(hex, 'hex'));
    }
    // Other schemes (a future v2) are skipped, so that receivers keep working while both are sent.
  }
  if (timestamp === undefined || signatures.length === 0) return undefined;
  return { timestamp, signatures };
}
