import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MailroomClient } from '@mailroom/client';
import { isTerminalState } from '@mailroom/core';
import { startSink, type Sink } from '@mailroom/sink';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { spawnNode, type ChildProcessHandle } from '../../harness/processes.js';
import { startRedisCluster, type RedisCluster } from '../../harness/redis-cluster.js';
import { waitFor } from '../../harness/wait-for.js';
import { message } from '../fixtures.js';
import {
  BIN,
  PREFIX,
  assertNoClusterClients,
  clusterSeedList,
  clusterSpec,
  clusterWorkerEnv,
  keysPerMaster,
} from './cluster-fixtures.js';

const TEMPLATE = {
  from: { name: 'Mailroom News', address: 'news@mailroom.example' },
  subject: 'Hello {{name}}',
  text: 'Dear {{name}},\n\nThe cluster issue.\n',
};

describe('Redis Cluster: worker processes configured with MAILROOM_REDIS_CLUSTER deliver', () => {
  let cluster: RedisCluster;
  let sink: Sink;
  let client: MailroomClient;
  const workers: ChildProcessHandle[] = [];
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    cluster = await startRedisCluster();
    sink = await startSink({});
    for (let i = 0; i < 2; i += 1) {
      workers.push(spawnNode(BIN, ['worker'], { env: clusterWorkerEnv(cluster, sink) }));
    }
    await Promise.all(workers.map((w) => w.waitForOutput(/worker started/, 30_000)));
    client = new MailroomClient({ redis: clusterSpec(cluster) });
    await client.ready();
  });

  after(async () => {
    for (const w of workers) w.kill('SIGTERM');
    const exits = await Promise.all(workers.map((w) => w.exited));
    await client.close();
    await sink.close();
    await assertNoClusterClients(cluster);
    await cluster.stop();
    await assertNoResourceLeaks(baseline);
    assert.deepEqual(
      exits.map((e) => e.code),
      [0, 0],
      `workers drain and exit 0 on SIGTERM\n${workers.map((w) => w.output().slice(-2000)).join('\n')}`,
    );
  });

  async function finished(ids: readonly string[], timeoutMs = 60_000): Promise<Map<string, string>> {
    const states = new Map<string, string>();
    await waitFor(
      async () => {
        for (const id of ids) {
          if (states.has(id)) continue;
          const s = await client.status(id);
          if (isTerminalState(s.state)) states.set(id, s.state);
        }
        return states.size === ids.length;
      },
      { timeoutMs, intervalMs: 250, what: `${ids.length} messages to finish` },
    );
    return states;
  }

  it('single messages, one by one and in a batch, each delivered once; retries and bounces as on one Redis', async () => {
    sink.reset();
    const receipts = [];
    for (let i = 0; i < 40; i += 1) receipts.push(await client.send(message(`ok-one${i}@example.test`)));
    receipts.push(await client.send(message('temp451-2-retry@example.test')));
    receipts.push(await client.send(message('bounce-gone@example.test')));
    receipts.push(
      ...(await client.sendMany(Array.from({ length: 300 }, (_, i) => message(`ok-many${i}@example.test`)))),
    );
    assert.equal(receipts.length, 342);
    assert.ok(receipts.every((r) => r.status === 'queued'));

    const states = await finished(receipts.map((r) => r.id));
    const byState = new Map<string, number>();
    for (const s of states.values()) byState.set(s, (byState.get(s) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byState), { delivered: 341, bounced: 1 });

    const copies = new Map<string, number>();
    for (const m of sink.messages) copies.set(m.messageId ?? '', (copies.get(m.messageId ?? '') ?? 0) + 1);
    assert.equal(sink.messages.length, 341, 'the SMTP server stored exactly the delivered messages');
    for (const r of receipts.slice(0, 41).concat(receipts.slice(42))) {
      assert.equal(copies.get(r.messageId), 1, `${r.id} delivered once`);
    }
    const retried = await client.status(receipts[40]!.id);
    assert.equal(retried.attempts, 3, 'two 451s, then delivered');
  });

  it('a campaign of 1,000 recipients: each delivered once, the campaign counts exact', async () => {
    sink.reset();
    const recipients = Array.from({ length: 1000 }, (_, i) => ({
      to: { name: `Reader ${i}`, address: `ok-reader${i}@example.test` },
      vars: { name: `Reader ${i}` },
    }));
    const receipt = await client.createCampaign({ name: 'cluster issue', template: TEMPLATE, recipients });
    assert.equal(receipt.accepted, 1000);
    let status = await client.campaignStatus(receipt.id);
    await waitFor(
      async () => {
        status = await client.campaignStatus(receipt.id);
        return status.uploaded && status.counts.pending === 0;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: 'the campaign to finish' },
    );
    assert.equal(status.counts.accepted, 1000);
    assert.equal(status.counts.terminal.delivered, 1000);
    assert.equal(sink.messages.length, 1000, 'the SMTP server stored exactly 1,000 messages');
    assert.equal(new Set(sink.messages.map((m) => m.messageId)).size, 1000, 'each once');
    assert.equal(new Set(sink.messages.map((m) => m.rcptTo[0])).size, 1000, 'each to its own recipient');
  });

  it('the command line reads MAILROOM_REDIS_CLUSTER: send, then status', async () => {
    sink.reset();
    const env = { PATH: process.env.PATH, MAILROOM_REDIS_CLUSTER: clusterSeedList(cluster) };
    const send = spawnNode(
      BIN,
      [
        'send',
        '--from',
        'cli@mailroom.example',
        '--to',
        'ok-cli@example.test',
        '--subject',
        'Hi',
        '--text',
        'x',
      ],
      { env },
    );
    const sent = await send.exited;
    assert.equal(sent.code, 0, send.output());
    const { id } = JSON.parse(send.output().trim().split('\n').at(-1)!) as { id: string };
    await finished([id]);
    assert.equal((await client.status(id)).state, 'delivered');
    const status = spawnNode(BIN, ['status'], { env });
    assert.equal((await status.exited).code, 0, status.output());
    assert.match(status.output(), /^queue: waiting \d+, active \d+/m);
  });

  it("every key of the deployment is on the master of the prefix's slot, none elsewhere", async () => {
    const home = await cluster.masterOf(PREFIX);
    const perMaster = await keysPerMaster(cluster);
    assert.equal(perMaster.size, 3, 'three masters');
    for (const [port, keys] of perMaster) {
      if (port === home.port) assert.ok(keys > 10, `the home master holds the keys (${keys})`);
      else assert.equal(keys, 0, `master ${port} holds no Mailroom key`);
    }
  });
});
