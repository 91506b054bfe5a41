import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import type { MailroomClient } from '@mailroom/client';
import { UnsubscribeTokenError, verifyUnsubscribeToken, type VerifiedUnsubscribeToken } from '@mailroom/core';
import { unsubscribeWebhookEvent, type WebhookEmitter } from '@mailroom/webhooks';

export interface UnsubscribeRoutesOptions {
  readonly client: MailroomClient;
  /** Secrets that may have signed a token, current first. */
  readonly secrets: readonly string[];
  /**
   * Where `unsubscribed` events go (MAILROOM_WEBHOOKS_FILE; none when undefined). `emit` only buffers the
   * event for the webhooks queue: it never waits for Redis and never throws, so the answer never waits on it.
   */
  readonly webhooks?: Pick<WebhookEmitter, 'emit'>;
}

/** Largest one-click body accepted (it is `List-Unsubscribe=One-Click`, perhaps as multipart). */
const FORM_LIMIT_BYTES = 4096;

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-robots-tag', 'noindex')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
        `<title>${escapeHtml(title)}</title><style>body{font-family:sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}</style></head>` +
        `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`,
    );
}

/** True when a form body says `List-Unsubscribe=One-Click` (urlencoded, or as a multipart field). */
function isOneClick(contentType: string, body: string): boolean {
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    return new URLSearchParams(body).get('List-Unsubscribe') === 'One-Click';
  }
  if (contentType.startsWith('multipart/form-data')) {
    return /name="List-Unsubscribe"\r?\n\r?\nOne-Click\r?\n/.test(body.replace(/\r\n/g, '\n'));
  }
  return false;
}

/**
 * RFC 8058 one-click unsubscribe, public (the token is the credential): POST /u/:token with the body
 * `List-Unsubscribe=One-Click` puts the token's address on its scope's suppression list (reason
 * `unsubscribe`); GET /u/:token only shows a page with a button that makes that POST, so a link scanner
 * that follows the URL unsubscribes no one.
 */
export const unsubscribeRoutes: FastifyPluginCallback<UnsubscribeRoutesOptions> = (app, options, done) => {
  for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data']) {
    app.addContentTypeParser(
      type,
      { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES },
      (_request, body, done) => {
        done(null, body);
      },
    );
  }

  function verify(token: string): VerifiedUnsubscribeToken | undefined {
    try {
      return verifyUnsubscribeToken(token, { secrets: options.secrets });
    } catch (err) {
      if (err instanceof UnsubscribeTokenError) return undefined;
      throw err;
    }
  }

  const invalid = (reply: FastifyReply) =>
    page(reply, 400, 'This unsubscribe link is not valid', '<p>It may have been cut short or altered.</p>');

  app.get<{ Params: { token: string } }>(
    '/u/:token',
    { config: { scope: 'public' }, schema: { hide: true } },
    async (request, reply) => {
      const token = verify(request.params.token);
      if (token === undefined) return invalid(reply);
      return page(
        reply,
        200,
        'Unsubscribe',
        `<p>Stop mail from the list <b>${escapeHtml(token.list)}</b> to <b>${escapeHtml(token.address)}</b>?</p>` +
          `<form method="post" action="${escapeHtml(encodeURIComponent(request.params.token))}">` +
          `<input type="hidden" name="List-Unsubscribe" value="One-Click">` +
          `<button type="submit">Unsubscribe</button></form>`,
      );
    },
  );

  app.post<{ Params: { token: string }; Body: string | undefined }>(
    '/u/:token',
    { config: { scope: 'public' }, schema: { hide: true } },
    async (request, reply) => {
      const token = verify(request.params.token);
      if (token === undefined) return invalid(reply);
      const contentType = (request.headers['content-type'] ?? '').toLowerCase();
      if (!isOneClick(contentType, typeof request.body === 'string' ? request.body : '')) {
        return page(reply, 400, 'Not unsubscribed', '<p>The request did not ask to unsubscribe.</p>');
      }
      const added = await options.client.suppressions.add(token.scope, [
        { address: token.address, reason: 'unsubscribe', source: `list:${token.list}` },
      ]);
      request.log.info(
        { list: token.list, scope: token.scope, newlySuppressed: added > 0 },
        'one-click unsubscribe',
      );
      // Once per address and scope: a second click (or a provider's repeated POST) adds nobody, emits nothing.
      if (added > 0 && options.webhooks !== undefined) {
        try {
          options.webhooks.emit(unsubscribeWebhookEvent(token));
        } catch (err) {
          request.log.warn({ err: { message: (err as Error).message } }, 'unsubscribed event not emitted');
        }
      }
      return page(reply, 200, 'Unsubscribed', `<p>You will get no more mail from this list.</p>`);
    },
  );
  done();
};
