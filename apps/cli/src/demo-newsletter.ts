/** The demo's newsletter: a campaign template (stored once) with a personalized subject and text part. */

const ARTICLES = [
  ['Queues that survive restarts', 'Every accepted message is in Redis before the producer hears "yes".'],
  [
    'Pooled SMTP, verified TLS',
    'Connections are reused, and certificates are checked unless you say otherwise.',
  ],
  [
    'Retries that back off',
    'Transient failures wait longer each time, with jitter, until the message expires.',
  ],
  ['Bounces that stop at once', 'A permanent refusal ends the message after one attempt, never retried.'],
  [
    'Metrics you can alert on',
    'Delivered, deferred and bounced counts with bounded labels, ready for Prometheus.',
  ],
];

export const DEMO_HTML = `<!doctype html>
<html><body style="font-family: sans-serif; max-width: 640px; margin: auto">
<h1>Mailroom Weekly</h1>
<p>This week in the mail room:</p>
${ARTICLES.map(
  ([title, body]) => `<div style="margin: 1.5em 0; padding: 1em; border: 1px solid #ddd; border-radius: 6px">
<h2 style="margin: 0 0 .5em">${title}</h2>
<p>${body} ${'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(4)}</p>
<p><a href="https://example.test/articles/${encodeURIComponent(title ?? '')}">Read more</a></p>
</div>`,
).join('\n')}
<p style="color: #777; font-size: small">You receive this because you subscribed to Mailroom Weekly.</p>
</body></html>`;

export interface DemoReader {
  readonly name: string;
  readonly address: string;
}

export function demoReader(i: number): DemoReader {
  const n = String(i + 1).padStart(5, '0');
  return { name: `Reader ${n}`, address: `reader-${n}@example.test` };
}

export function demoMessage(reader: DemoReader) {
  return {
    from: { name: 'Mailroom Weekly', address: 'weekly@news.example.test' },
    to: { name: reader.name, address: reader.address },
    subject: `${reader.name}, your Mailroom Weekly is here`,
    text: `Hello ${reader.name},\n\n${ARTICLES.map(([t, b]) => `* ${t}\n  ${b}`).join('\n')}\n\nSee you next week.\n`,
    html: DEMO_HTML,
    tags: ['newsletter', 'demo'],
  };
}

/** The same newsletter as a campaign template: `{{name}}` is filled in per reader. */
export const DEMO_TEMPLATE = {
  from: { name: 'Mailroom Weekly', address: 'weekly@news.example.test' },
  subject: '{{name}}, your Mailroom Weekly is here',
  text: `Hello {{name}},\n\n${ARTICLES.map(([t, b]) => `* ${t}\n  ${b}`).join('\n')}\n\nSee you next week.\n`,
  html: DEMO_HTML,
};

/** The demo's readers as campaign recipients, generated one by one. */
export function* demoRecipients(count: number) {
  for (let i = 0; i < count; i += 1) {
    const reader = demoReader(i);
    yield { to: { name: reader.name, address: reader.address }, vars: { name: reader.name } };
  }
}
