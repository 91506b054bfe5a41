import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Registry, createQueueMetrics, createWorkerMetrics } from '@mailroom/metrics';
import { createWebhookMetrics } from '@mailroom/webhooks';

const METRICS_DOC = fileURLToPath(new URL('../../../../docs/metrics.md', import.meta.url));

interface Row {
  type: string;
  labels: string[];
  from: string;
}

/** The rows of docs/metrics.md's `| metric | type | labels | from | meaning |` table. */
function documented(): Map<string, Row> {
  const lines = readFileSync(METRICS_DOC, 'utf8').split('\n');
  const header = lines.findIndex((l) => /^\| metric \| type \| labels \| from \| meaning \|$/.test(l));
  assert.ok(header >= 0, 'docs/metrics.md has the reference table');
  const rows = new Map<string, Row>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const [name, type, labels, from] = line
      .slice(1, -1)
      .split('|')
      .map((c) => c.trim());
    const metric = /^`([a-z_:]+)`$/.exec(name ?? '')?.[1];
    assert.ok(metric, `a metric name in backticks: ${line}`);
    assert.ok(!rows.has(metric), `${metric} is documented once`);
    rows.set(metric, {
      type: type ?? '',
      labels: [...(labels ?? '').matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!),
      from: from ?? '',
    });
  }
  return rows;
}

/** What a registry exports: `mailroom_` metrics with their type and label names. */
async function exported(registry: Registry, from: string): Promise<Map<string, Row>> {
  const out = new Map<string, Row>();
  for (const metric of await registry.getMetricsAsJSON()) {
    if (!metric.name.startsWith('mailroom_')) continue;
    // prom-client keeps the declared label names on the metric object.
    const declared = registry.getSingleMetric(metric.name) as unknown as { labelNames: string[] };
    out.set(metric.name, { type: metric.type as unknown as string, labels: [...declared.labelNames], from });
  }
  return out;
}

describe('docs/metrics.md', () => {
  it('documents exactly the metrics Mailroom exports, with their type, labels and role', async () => {
    const worker = new Registry();
    createWorkerMetrics({ registry: worker, version: 'test', defaultMetrics: false });
    // A worker with MAILROOM_WEBHOOKS_FILE also registers the webhook metrics.
    createWebhookMetrics({ registry: worker, endpoints: ['crm'] });
    const queue = new Registry();
    createQueueMetrics({ registry: queue, queues: ['mail'] });
    const actual = new Map([...(await exported(worker, 'W')), ...(await exported(queue, 'Q'))]);
    const docs = documented();
    for (const [name, row] of actual) {
      const doc = docs.get(name);
      assert.ok(doc, `${name} is documented`);
      assert.equal(doc.type, row.type, `${name}: type`);
      assert.deepEqual(doc.labels, row.labels, `${name}: labels, in order`);
      assert.equal(
        doc.from,
        row.from,
        `${name}: exported by ${row.from === 'W' ? 'every worker' : 'the queue-gauge role'}`,
      );
    }
    for (const name of docs.keys()) assert.ok(actual.has(name), `${name} in the doc is exported`);
    assert.ok(actual.size >= 25);
  });
});
