import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '@mailroom/core';
import { WEBHOOK_EVENT_TYPES, loadWebhookConfig, parseWebhookConfig } from '@mailroom/webhooks';

const SECRET = 's'.repeat(32);

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('MAILROOM_WEBHOOKS_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-webhook-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads endpoints with their defaults, secrets inline or from the environment', () => {
    const path = join(dir, 'webhooks.json');
    writeFileSync(
      path,
      JSON.stringify([
        { name: 'crm', url: 'https://hooks.example.com/mailroom?token=abc', secret: SECRET },
        {
          name: 'local-audit',
          url: 'http://127.0.0.1:8080/events',
          secretEnv: 'AUDIT_SECRETS',
          events: ['bounced', 'complained'],
          timeoutMs: 2000,
          maxEventsPerRequest: 1,
          retryHours: 2,
        },
        { name: 'v6', url: 'http://[::1]:9000/', secret: [SECRET, 't'.repeat(40)] },
      ]),
    );
    const endpoints = loadWebhookConfig(path, { AUDIT_SECRETS: `${'a'.repeat(32)}, ${'b'.repeat(33)}` });
    assert.equal(endpoints.length, 3);
    const [crm, audit, v6] = endpoints;
    assert.equal(crm!.name, 'crm');
    assert.deepEqual(crm!.secrets, [SECRET]);
    assert.deepEqual([...crm!.events], [...WEBHOOK_EVENT_TYPES]);
    assert.equal(crm!.timeoutMs, 10_000);
    assert.equal(crm!.maxEventsPerRequest, 100);
    assert.equal(crm!.retryForMs, 24 * 3_600_000);
    assert.deepEqual(audit!.secrets, ['a'.repeat(32), 'b'.repeat(33)]);
    assert.deepEqual([...audit!.events], ['bounced', 'complained']);
    assert.equal(audit!.timeoutMs, 2000);
    assert.equal(audit!.maxEventsPerRequest, 1);
    assert.equal(audit!.retryForMs, 2 * 3_600_000);
    assert.equal(v6!.secrets.length, 2);
    // The secrets are not enumerable: a logged endpoint does not show them.
    assert.ok(!JSON.stringify(crm).includes(SECRET));
    assert.ok(Object.isFrozen(crm));
  });

  it('names the path of every problem', () => {
    const err = configError(() =>
      parseWebhookConfig(
        [
          { name: 'Bad Name', url: 'https://a.example/', secret: SECRET },
          { name: 'short', url: 'https://a.example/', secret: 'too-short' },
          { name: 'types', url: 'https://a.example/', secret: SECRET, events: ['opened'] },
          { name: 'extra', url: 'https://a.example/', secret: SECRET, retries: 3 },
          { name: 'slow', url: 'https://a.example/', secret: SECRET, timeoutMs: 120_000 },
          { name: 'big', url: 'https://a.example/', secret: SECRET, maxEventsPerRequest: 201 },
        ],
        {},
      ),
    );
    const fields = err.issues.map((i) => i.field);
    assert.ok(fields.includes('MAILROOM_WEBHOOKS_FILE [0].name'), fields.join(' | '));
    assert.ok(fields.includes('MAILROOM_WEBHOOKS_FILE [1].secret'), fields.join(' | '));
    assert.ok(fields.includes('MAILROOM_WEBHOOKS_FILE [2].events[0]'), fields.join(' | '));
    assert.ok(fields.includes('MAILROOM_WEBHOOKS_FILE [3]'), fields.join(' | '));
    assert.ok(fields.includes('MAILROOM_WEBHOOKS_FILE [4].timeoutMs'), fields.join(' | '));
    assert.ok(fields.includes('MAILROOM_WEBHOOKS_FILE [5].maxEventsPerRequest'), fields.join(' | '));
    assert.equal(err.code, 'ERR_CONFIG');
  });

  it('refuses plain http off loopback, credentials in the URL (never repeating them), and other schemes', () => {
    const err = configError(() =>
      parseWebhookConfig(
        [
          { name: 'plain', url: 'http://hooks.example.com/x', secret: SECRET },
          { name: 'creds', url: 'https://bob:hunter2-secret@hooks.example.com/x', secret: SECRET },
          { name: 'ftp', url: 'ftp://hooks.example.com/x', secret: SECRET },
          { name: 'nourl', url: 'not a url', secret: SECRET },
          { name: 'lookalike', url: 'http://127.0.0.1.example.com/x', secret: SECRET },
        ],
        {},
      ),
    );
    const byField = new Map(err.issues.map((i) => [i.field, i.message]));
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [0].url') ?? '', /https/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [1].url') ?? '', /credentials/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [2].url') ?? '', /https/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [3].url') ?? '', /not a URL/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [4].url') ?? '', /https/);
    assert.ok(!err.message.includes('hunter2'), 'the password is never repeated');
    assert.ok(!err.message.includes('hooks.example.com'), 'nor the URL');
  });

  it('requires exactly one of secret and secretEnv, an existing variable, unique names', () => {
    const err = configError(() =>
      parseWebhookConfig(
        [
          { name: 'none', url: 'https://a.example/' },
          { name: 'both', url: 'https://a.example/', secret: SECRET, secretEnv: 'X_SECRET' },
          { name: 'unset', url: 'https://a.example/', secretEnv: 'NOT_SET' },
          { name: 'weak', url: 'https://a.example/', secretEnv: 'WEAK' },
          { name: 'weak', url: 'https://b.example/', secret: SECRET },
        ],
        { X_SECRET: SECRET, WEAK: `${SECRET},short` },
      ),
    );
    const byField = new Map(err.issues.map((i) => [i.field, i.message]));
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [0].secret') ?? '', /exactly one/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [1].secret') ?? '', /exactly one/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [2].secretEnv') ?? '', /NOT_SET, which is not set/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [3].secretEnv') ?? '', /at least 32/);
    assert.match(byField.get('MAILROOM_WEBHOOKS_FILE [4].name') ?? '', /used twice/);
    assert.ok(!err.message.includes(SECRET), 'no secret in the message');
  });

  it('reports a missing file and bad JSON against the variable', () => {
    const missing = configError(() => loadWebhookConfig(join(dir, 'nope.json'), {}));
    assert.deepEqual(missing.issues, [
      { field: 'MAILROOM_WEBHOOKS_FILE', message: 'cannot be read (ENOENT)' },
    ]);
    const path = join(dir, 'bad.json');
    writeFileSync(path, '[{');
    const bad = configError(() => loadWebhookConfig(path, {}));
    assert.equal(bad.issues[0]?.field, 'MAILROOM_WEBHOOKS_FILE');
    assert.match(bad.issues[0]?.message ?? '', /not valid JSON/);
    const notList = configError(() => parseWebhookConfig({ name: 'x' }, {}));
    assert.equal(notList.issues[0]?.field, 'MAILROOM_WEBHOOKS_FILE');
  });
});
