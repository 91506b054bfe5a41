import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { Registry, createQueueMetrics, createWorkerMetrics } from '@mailroom/metrics';
import { metricNamesIn, metricNamesInVariableQuery, withoutGrafanaVariables } from './promql-names.js';
import { promtool } from './promtool.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const RULES_DIR = join(ROOT, 'deploy', 'prometheus', 'rules');
const DASHBOARDS_DIR = join(ROOT, 'deploy', 'grafana', 'dashboards');

/** Series Prometheus itself makes: scrape health and the state of alerts. */
const PROMETHEUS_SERIES = ['up', 'ALERTS'];

interface RuleFile {
  groups: { rules: { record?: string; alert?: string; expr: string }[] }[];
}

const rules = readdirSync(RULES_DIR)
  .filter((f) => f.endsWith('.yml'))
  .flatMap((f) =>
    (parse(readFileSync(join(RULES_DIR, f), 'utf8')) as RuleFile).groups.flatMap((g) => g.rules),
  );

interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
  annotations: { list: { expr?: string }[] };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; datasource?: { uid: string } }[];
}

const dashboards = readdirSync(DASHBOARDS_DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({
    file: f,
    dashboard: JSON.parse(readFileSync(join(DASHBOARDS_DIR, f), 'utf8')) as Dashboard,
  }));

/** Every PromQL expression of a dashboard: panel targets and annotation queries, with where it sits. */
function dashboardExpressions(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const panel of d.panels) {
    for (const target of panel.targets ?? [])
      out.push({ where: `panel "${panel.title}"`, expr: target.expr });
  }
  for (const annotation of d.annotations.list) {
    if (annotation.expr !== undefined) out.push({ where: 'annotation', expr: annotation.expr });
  }
  return out;
}

function variableQueries(d: Dashboard): { where: string; query: string }[] {
  return d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({
      where: `variable $${v.name}`,
      query: typeof v.query === 'string' ? v.query : (v.query as { query: string }).query,
    }));
}

/** Every series name Mailroom's processes export: worker metrics, queue gauges, default process metrics. */
async function exportedNames(): Promise<Set<string>> {
  const registry = new Registry();
  createWorkerMetrics({ registry, version: 'test' });
  createQueueMetrics({ registry, queues: ['mail'] });
  const names = new Set<string>();
  for (const metric of await registry.getMetricsAsJSON()) {
    // prom-client's typings declare a numeric enum; at run time the type is its name.
    const type = metric.type as unknown as string;
    if (type === 'histogram') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    } else if (type === 'summary') {
      for (const suffix of ['', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    } else {
      names.add(metric.name);
    }
  }
  return names;
}

describe('PromQL in deploy/ names only metrics Mailroom exports', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'mailroom-promql-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('reads metric names out of PromQL (and can tell a name that is not exported)', async () => {
    const cases: [string, string[]][] = [
      ['up{job="mailroom"} == 0', ['up']],
      [
        'sum by (domain) (rate(mailroom_delivery_attempts_total{result="deferred",domain=~"$domain"}[$__rate_interval]))',
        ['mailroom_delivery_attempts_total'],
      ],
      [
        'histogram_quantile(0.95, sum by (le, relay) (rate(mailroom_smtp_send_duration_seconds_bucket[5m]))) > 10',
        ['mailroom_smtp_send_duration_seconds_bucket'],
      ],
      ['a:b:c > 0.05 and on () sum(increase(x_total[1h] offset 5m)) > 200', ['a:b:c', 'x_total']],
      ['max without (instance) (q{state=~"waiting|prioritized"}) unless on (queue) p == 1', ['q', 'p']],
      ['absent(m) or time() - max(t_seconds) > 120', ['m', 't_seconds']],
      ['sum(rate(x[10m])) or vector(0)', ['x']],
      ['count({__name__="named_total", job="j"}) / count(y) by (z)', ['named_total', 'y']],
      ['topk(10, sum by (stage, code) (increase(r_total{code!~"2..|2xx"}[1h])))', ['r_total']],
      ['a * on (x) group_left (y, z) b', ['a', 'b']],
      ['1e3 * foo_bytes / 1024', ['foo_bytes']],
    ];
    for (const [expr, names] of cases) assert.deepEqual(metricNamesIn(expr), names, expr);
    assert.deepEqual(metricNamesInVariableQuery('label_values(mailroom_queue_jobs, queue)'), [
      'mailroom_queue_jobs',
    ]);
    assert.deepEqual(metricNamesInVariableQuery('label_values(job)'), []);
    assert.equal(withoutGrafanaVariables('rate(x[$__rate_interval]) / $__range'), 'rate(x[5m]) / 5m');
    const exported = await exportedNames();
    assert.ok(!exported.has(metricNamesIn('rate(mailroom_messages_sent_total[5m])')[0]!));
  });

  it('the alerting and recording rules', async () => {
    const exported = await exportedNames();
    const recorded = new Set(rules.flatMap((r) => (r.record === undefined ? [] : [r.record])));
    for (const rule of rules) {
      for (const name of metricNamesIn(rule.expr)) {
        assert.ok(
          exported.has(name) || recorded.has(name) || PROMETHEUS_SERIES.includes(name),
          `${rule.alert ?? rule.record}: ${name} is not a metric Mailroom exports`,
        );
      }
    }
  });

  it('the Grafana dashboards: panels, annotations and variables', async () => {
    const exported = await exportedNames();
    const recorded = new Set(rules.flatMap((r) => (r.record === undefined ? [] : [r.record])));
    assert.ok(dashboards.length > 0);
    let checked = 0;
    for (const { file, dashboard } of dashboards) {
      const expressions = [
        ...dashboardExpressions(dashboard).map((e) => ({ where: e.where, names: metricNamesIn(e.expr) })),
        ...variableQueries(dashboard).map((v) => ({
          where: v.where,
          names: metricNamesInVariableQuery(v.query),
        })),
      ];
      for (const { where, names } of expressions) {
        assert.ok(names.length > 0, `${file} ${where}: selects no metric`);
        for (const name of names) {
          checked += 1;
          assert.ok(
            exported.has(name) || recorded.has(name) || PROMETHEUS_SERIES.includes(name),
            `${file} ${where}: ${name} is not a metric Mailroom exports`,
          );
        }
      }
    }
    assert.ok(checked > 40, `${checked} names checked`);
  });

  it('every dashboard expression is valid PromQL (`promtool check rules` on them as recording rules)', async () => {
    for (const { file, dashboard } of dashboards) {
      const exprs = dashboardExpressions(dashboard);
      const ruleFile = join(scratch, `${file}.rules.yml`);
      writeFileSync(
        ruleFile,
        stringify({
          groups: [
            {
              name: 'dashboard',
              rules: exprs.map((e, i) => ({
                record: `dashboard:expression_${i}`,
                expr: withoutGrafanaVariables(e.expr),
              })),
            },
          ],
        }),
      );
      const result = await promtool(['check', 'rules', ruleFile]);
      assert.equal(result.code, 0, `${file}: ${result.output}`);
      assert.match(result.output, new RegExp(`SUCCESS: ${exprs.length} rules found`));
    }
    // And the check can fail.
    const broken = join(scratch, 'broken.rules.yml');
    writeFileSync(
      broken,
      stringify({ groups: [{ name: 'x', rules: [{ record: 'x:y', expr: 'sum(rate(x[5m])' }] }] }),
    );
    assert.notEqual((await promtool(['check', 'rules', broken])).code, 0);
  });

  it('the dashboards are well formed: ids, layout, the data source variable, defined variables only', () => {
    for (const { file, dashboard } of dashboards) {
      assert.match(dashboard.uid, /^[a-z0-9-]{1,40}$/, `${file}: uid`);
      const ids = dashboard.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${file}: panel ids are unique`);
      const variables = new Set(dashboard.templating.list.map((v) => v.name));
      assert.ok(variables.has('datasource'));
      for (const panel of dashboard.panels) {
        assert.ok(
          panel.gridPos.x >= 0 && panel.gridPos.x + panel.gridPos.w <= 24,
          `${file}: "${panel.title}" fits`,
        );
        if (panel.type === 'row') continue;
        assert.equal(panel.datasource?.uid, '${datasource}', `${file}: "${panel.title}" uses $datasource`);
        assert.ok((panel.targets ?? []).length > 0, `${file}: "${panel.title}" has a query`);
      }
      const text = JSON.stringify(dashboard);
      for (const [, name] of text.matchAll(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)/g)) {
        if (name!.startsWith('__')) continue;
        assert.ok(variables.has(name!), `${file}: $${name} is a dashboard variable`);
      }
    }
  });
});
