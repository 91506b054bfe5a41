import type { WebhookEndpoint } from './webhook-config.js';
import {
  DELIVERY_ATTEMPT_HEADER,
  DELIVERY_ID_HEADER,
  EVENT_ID_HEADER,
  SIGNATURE_HEADER,
  signWebhookPayload,
} from './webhook-signature.js';

/** What one request came to. */
export type PostOutcome =
  | { readonly kind: 'delivered'; readonly status: number; readonly seconds: number }
  | { readonly kind: 'gone'; readonly status: 410; readonly seconds: number }
  | {
      readonly kind: 'retry';
      /** Short and free of the URL: `HTTP 503`, `timeout after 10000 ms`, `network error ECONNREFUSED`. */
      readonly reason: string;
      readonly status?: number;
      /** The receiver's Retry-After (429, 503), ms. */
      readonly retryAfterMs?: number;
      readonly seconds: number;
    };

export interface PostRequest {
  /** The exact body: the JSON array of the delivery's events, the same bytes on every try. */
  readonly body: string;
  readonly eventIds: readonly string[];
  readonly deliveryId: string;
  /** This try, from 1. */
  readonly attempt: number;
}

/** Response bytes read at most (the rest is discarded): receivers answer with a status, not a document. */
const MAX_RESPONSE_BYTES = 64 * 1024;
export const WEBHOOK_USER_AGENT = 'Mailroom-Webhooks/1';

/**
 * POSTs one delivery, signed at send time (a fresh timestamp per try, same body). The time limit covers the
 * whole exchange, response body included. Redirects are not followed: a signed payload goes only to the
 * configured URL.
 */
export async function postWebhook(
  endpoint: WebhookEndpoint,
  request: PostRequest,
  now = Date.now(),
): Promise<PostOutcome> {
  const timestamp = Math.floor(now / 1000);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), endpoint.timeoutMs);
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const response = await fetch(endpoint.url, {
      method: 'POST',
      body: request.body,
      redirect: 'manual',
      signal: controller.signal,
      headers: {
        'content-type': 'application/json',
        'user-agent': WEBHOOK_USER_AGENT,
        [SIGNATURE_HEADER]: signWebhookPayload(request.body, endpoint.secrets, timestamp),
        [EVENT_ID_HEADER]: request.eventIds.join(','),
        [DELIVERY_ID_HEADER]: request.deliveryId,
        [DELIVERY_ATTEMPT_HEADER]: String(request.attempt),
      },
    });
    // Read (and drop) the answer, so the connection can be reused; bounded in size and by the same timer.
    await drain(response);
    const status = response.status;
    if (status >= 200 && status < 300) return { kind: 'delivered', status, seconds: seconds() };
    if (status === 410) return { kind: 'gone', status, seconds: seconds() };
    const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(response.headers) : undefined;
    return {
      kind: 'retry',
      reason:
        status >= 300 && status < 400 ? `HTTP ${status} (redirects are not followed)` : `HTTP ${status}`,
      status,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      seconds: seconds(),
    };
  } catch (err) {
    if (controller.signal.aborted) {
      return { kind: 'retry', reason: `timeout after ${endpoint.timeoutMs} ms`, seconds: seconds() };
    }
    return { kind: 'retry', reason: `network error ${networkCode(err)}`, seconds: seconds() };
  } finally {
    clearTimeout(timer);
  }
}

async function drain(response: Response): Promise<void> {
  const reader = (response.body as ReadableStream<Uint8Array> | null)?.getReader();
  if (reader === undefined) return;
  let read = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    read += value.byteLength;
    if (read > MAX_RESPONSE_BYTES) {
      await reader.cancel();
      return;
    }
  }
}

/** Retry-After in seconds or as an HTTP date, ms from now; undefined when absent or unreadable. */
function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const value = headers.get('retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d{1,9}$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The system error code behind a failed fetch (ECONNREFUSED, ENOTFOUND, UND_ERR_SOCKET), never the URL. */
function networkCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = cause?.code ?? (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'unknown';
}
