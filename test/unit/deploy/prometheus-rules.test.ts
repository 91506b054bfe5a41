import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { promtool } from './promtool.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const PROMETHEUS_DIR = join(ROOT, 'deploy', 'prometheus');
const RULES_DIR = join(PROMETHEUS_DIR, 'rules');
const TESTS_DIR = join(PROMETHEUS_DIR, 'tests');
const PRODUCTION_DOC = join(ROOT, 'docs', 'going-to-production.md');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

const ruleFiles = readdirSync(RULES_DIR)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => join(RULES_DIR, f));
const testFiles = readdirSync(TESTS_DIR)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => join(TESTS_DIR, f));
const rules = ruleFiles.flatMap((f) =>
  (parse(readFileSync(f, 'utf8')) as RuleFile).groups.flatMap((g) => g.rules),
);
const alerts = rules.filter((r) => r.alert !== undefined);

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  return new Set(
    markdown
      .split('\n')
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) =>
        l
          .replace(/^#+ /, '')
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, '')
          .replace(/ /g, '-'),
      ),
  );
}

describe('Prometheus rules in deploy/prometheus', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'mailroom-promtool-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('pass `promtool check rules`', async () => {
    assert.ok(ruleFiles.length > 0);
    const result = await promtool(['check', 'rules', ...ruleFiles]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('pass their unit tests, `promtool test rules`', async () => {
    assert.ok(testFiles.length > 0);
    const result = await promtool(['test', 'rules', ...testFiles]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /SUCCESS/);
  });

  it('would fail `promtool test rules` if an alert changed its threshold', async () => {
    // The unit tests can fail: the bounce alert at 50% instead of 5% no longer fires on 20% bounces.
    const dir = join(scratch, 'mutated');
    cpSync(PROMETHEUS_DIR, dir, { recursive: true });
    const file = join(dir, 'rules', 'mailroom.rules.yml');
    const text = readFileSync(file, 'utf8');
    assert.ok(text.includes('mailroom:bounce_ratio:rate1h > 0.05'));
    writeFileSync(
      file,
      text.replace('mailroom:bounce_ratio:rate1h > 0.05', 'mailroom:bounce_ratio:rate1h > 0.5'),
    );
    const result = await promtool(['test', 'rules', ...testFiles.map((f) => f.replace(PROMETHEUS_DIR, dir))]);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /MailroomHighBounceRate/);
  });

  it('the shipped prometheus.yml passes `promtool check config`, rules included', async () => {
    // The token file is a Compose secret at /run/secrets; point it at a local file for the check.
    const dir = join(scratch, 'config');
    cpSync(PROMETHEUS_DIR, dir, { recursive: true });
    const tokenFile = join(dir, 'metrics-token');
    writeFileSync(tokenFile, 'a-token-for-the-check-0123456789');
    const config = readFileSync(join(dir, 'prometheus.yml'), 'utf8');
    assert.ok(config.includes('/run/secrets/metrics_token'));
    writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('/run/secrets/metrics_token', tokenFile));
    const result = await promtool(['check', 'config', join(dir, 'prometheus.yml')]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('give every alert a severity, a summary and a runbook section that exists', () => {
    const sections = anchors(readFileSync(PRODUCTION_DOC, 'utf8'));
    assert.ok(alerts.length >= 10);
    for (const alert of alerts) {
      assert.match(alert.labels?.severity ?? '', /^(critical|warning|info)$/, `${alert.alert}: severity`);
      assert.ok(alert.annotations?.summary, `${alert.alert}: summary`);
      const runbook = alert.annotations?.runbook ?? '';
      const [file, anchor] = runbook.split('#');
      assert.equal(file, 'docs/going-to-production.md', `${alert.alert}: runbook`);
      assert.ok(
        sections.has(anchor ?? ''),
        `${alert.alert}: docs/going-to-production.md has a section #${anchor}`,
      );
    }
  });

  it('cover every alert with at least one unit test, and every alert the issue asks for exists', () => {
    const tested = new Set(
      testFiles.flatMap((f) =>
        (
          parse(readFileSync(f, 'utf8')) as { tests: { alert_rule_test?: { alertname: string }[] }[] }
        ).tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)),
      ),
    );
    for (const alert of alerts) assert.ok(tested.has(alert.alert!), `${alert.alert} has a promtool test`);
    const names = new Set(alerts.map((a) => a.alert));
    for (const required of [
      'MailroomHighBounceRate',
      'MailroomHighComplaintRate',
      'MailroomDomainDeferring',
      'MailroomSendErrors',
      'MailroomRelayAuthOrTlsFailing',
      'MailroomRelayCircuitOpen',
      'MailroomBacklogStale',
      'MailroomNotDraining',
      'MailroomMessagesOverdue',
      'MailroomRedisDisconnected',
    ]) {
      assert.ok(names.has(required), required);
    }
  });
});
