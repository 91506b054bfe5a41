import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ConfigError } from '@mailroom/core';
import { loadWorkerConfig, settingsTable, workerSettings } from '@mailroom/worker';

const README = fileURLToPath(new URL('../../../../README.md', import.meta.url));

function issuesOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadWorkerConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.issues.map((i) => `${i.field}: ${i.message}`);
  }
  assert.fail('expected a ConfigError');
}

describe('worker configuration', () => {
  it('applies safe defaults: STARTTLS required, certificates verified, loopback listener', () => {
    const config = loadWorkerConfig({ MAILROOM_SMTP_HOST: 'smtp.example.com' });
    assert.equal(config.relay.tlsMode, 'starttls');
    assert.equal(config.relay.verifyCertificates, true);
    assert.equal(config.relay.port, 587);
    assert.equal(config.http?.host, '127.0.0.1');
    assert.equal(config.prefix, '{mailroom}');
    assert.ok(Object.isFrozen(config));
  });

  it('never echoes the value of a secret setting in its error', () => {
    const issues = issuesOf({
      MAILROOM_SMTP_HOST: 'relay.example.com',
      MAILROOM_METRICS_TOKEN: 'short-s3cret',
      MAILROOM_BOUNCE_DOMAIN: 'bounce.example.com',
      MAILROOM_VERP_SECRET: 'tiny-s3cret',
      MAILROOM_SMTP_TLS: 'maybe',
    });
    assert.ok(issues.some((i) => i.startsWith('MAILROOM_METRICS_TOKEN: must be at least 16 characters')));
    assert.ok(issues.some((i) => i.startsWith('MAILROOM_VERP_SECRET: must be at least 16 characters')));
    assert.ok(!issues.join('\n').includes('s3cret'), issues.join('\n'));
    assert.ok(
      issues.some((i) => i.includes('(got "maybe")')),
      'other values are still echoed',
    );
  });

  it('names every bad variable at once', () => {
    const issues = issuesOf({
      MAILROOM_SMTP_PORT: '70000',
      MAILROOM_SMTP_TLS: 'maybe',
      MAILROOM_WORKER_CONCURRENCY: 'lots',
      MAILROOM_SMTP_TLS_VERIFY: 'no',
      MAILROOM_QUEUE_PREFIX: 'mailroom',
    });
    const fields = issues.map((i) => i.split(':')[0]);
    assert.deepEqual(
      fields.sort(),
      [
        'MAILROOM_QUEUE_PREFIX',
        'MAILROOM_SMTP_HOST',
        'MAILROOM_SMTP_PORT',
        'MAILROOM_SMTP_TLS',
        'MAILROOM_SMTP_TLS_VERIFY',
        'MAILROOM_WORKER_CONCURRENCY',
      ].sort(),
    );
    assert.ok(issues.includes('MAILROOM_SMTP_HOST: is required (or set MAILROOM_RELAYS_FILE)'));
    assert.ok(issues.some((i) => i.startsWith('MAILROOM_SMTP_TLS: must be one of starttls, tls, none')));
  });

  it('refuses AUTH without TLS, half-set credentials and an unreadable CA file', () => {
    assert.ok(
      issuesOf({
        MAILROOM_SMTP_HOST: 'h.example',
        MAILROOM_SMTP_TLS: 'none',
        MAILROOM_SMTP_USER: 'u',
        MAILROOM_SMTP_PASS: 'p',
      }).some((i) => i.startsWith('MAILROOM_SMTP_TLS: AUTH over a connection without TLS')),
    );
    assert.ok(
      issuesOf({ MAILROOM_SMTP_HOST: 'h.example', MAILROOM_SMTP_USER: 'u' }).some((i) =>
        i.startsWith('MAILROOM_SMTP_PASS:'),
      ),
    );
    assert.ok(
      issuesOf({ MAILROOM_SMTP_HOST: 'h.example', MAILROOM_SMTP_CA_FILE: '/nonexistent/ca.pem' }).includes(
        'MAILROOM_SMTP_CA_FILE: cannot be read (ENOENT)',
      ),
    );
  });

  it('requires a metrics token when the listener is not on loopback', () => {
    assert.ok(
      issuesOf({ MAILROOM_SMTP_HOST: 'h.example', MAILROOM_HTTP_HOST: '0.0.0.0' }).some((i) =>
        i.startsWith('MAILROOM_METRICS_TOKEN: is required'),
      ),
    );
    const ok = loadWorkerConfig({
      MAILROOM_SMTP_HOST: 'h.example',
      MAILROOM_HTTP_HOST: '0.0.0.0',
      MAILROOM_METRICS_TOKEN: 'a-long-enough-token',
    });
    assert.equal(ok.http?.metricsToken, 'a-long-enough-token');
  });

  it('reads the metric domain list and the queue-gauge role, and names a bad list', () => {
    const defaults = loadWorkerConfig({ MAILROOM_SMTP_HOST: 'h.example' });
    assert.ok(defaults.metricDomains.includes('gmail.com'));
    assert.equal(defaults.queueGauges, false);
    const set = loadWorkerConfig({
      MAILROOM_SMTP_HOST: 'h.example',
      MAILROOM_METRIC_DOMAINS: 'Gmail.com, bücher.example',
      MAILROOM_QUEUE_GAUGES: 'true',
    });
    assert.deepEqual(set.metricDomains, ['gmail.com', 'xn--bcher-kva.example']);
    assert.equal(set.queueGauges, true);
    assert.ok(Object.isFrozen(set.metricDomains));
    const issues = issuesOf({
      MAILROOM_SMTP_HOST: 'h.example',
      MAILROOM_METRIC_DOMAINS: 'gmail.com,other,gmail.com',
    });
    assert.ok(
      issues.some((i) => i.startsWith('MAILROOM_METRIC_DOMAINS: "other" is the label of unlisted domains')),
    );
    assert.ok(issues.some((i) => i.startsWith('MAILROOM_METRIC_DOMAINS: "gmail.com" is listed twice')));
    assert.ok(issuesOf({ MAILROOM_SMTP_HOST: 'h.example', MAILROOM_QUEUE_GAUGES: 'yes' }).length === 1);
  });

  it('turning certificate verification off must be explicit and exact', () => {
    assert.equal(
      loadWorkerConfig({ MAILROOM_SMTP_HOST: 'h', MAILROOM_SMTP_TLS_VERIFY: 'false' }).relay
        .verifyCertificates,
      false,
    );
    assert.ok(issuesOf({ MAILROOM_SMTP_HOST: 'h', MAILROOM_SMTP_TLS_VERIFY: '0' }).length === 1);
  });

  it("README's configuration table is the one generated from the schema", () => {
    const readme = readFileSync(README, 'utf8');
    const table = settingsTable(workerSettings);
    assert.ok(
      readme.includes(table),
      `README.md must contain the table printed by \`node scripts/config-table.mjs\`:\n${table}`,
    );
  });
});
