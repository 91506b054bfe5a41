import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { ChildProcessHandle } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { assertBooksBalance, FaultBed, newsletter } from './fault-bed.js';

const MESSAGES = 3000;
/** Deliveries each joining worker makes before the next step: proof that it took work from the queue. */
const JOINED_AFTER = 100;

/**
 * Messages this worker process recorded as delivered: each outcome is logged once, at info level, by the
 * worker that recorded it (`message finished`, outcome `delivered`). Read from the process's output, so it
 * covers the whole life of the process, its drain after SIGTERM included.
 */
function deliveredBy(worker: ChildProcessHandle | undefined): number {
  assert.ok(worker, 'a worker of this bed');
  let count = 0;
  for (const line of worker.output().split('\n')) {
    if (!line.includes('"message finished"')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; outcome?: string };
      if (entry.msg === 'message finished' && entry.outcome === 'delivered') count += 1;
    } catch {
      // a line cut by the process's death: not a record
    }
  }
  return count;
}

/** One worker at first, two more joining once it has delivered a few hundred messages. */
async function scaleUpFromOne(bed: FaultBed): Promise<number[]> {
  // slow-20: the reply to each final dot comes 20 ms late, so one worker (5 connections) sends at most
  // about 250 messages a second and the run lasts long enough to join and leave in.
  await bed.enqueue(newsletter(MESSAGES, () => 'slow-20-'));
  await bed.startWorkers();
  await bed.delivered(300);
  const added = await bed.addWorkers(2);
  await waitFor(() => added.every((i) => deliveredBy(bed.workers[i]) >= JOINED_AFTER), {
    timeoutMs: 30_000,
    what: `each joining worker to deliver ${JOINED_AFTER} messages`,
  });
  return added;
}

describe('operations: workers join and leave during a run', () => {
  let bed: FaultBed | undefined;
  afterEach(async () => {
    await bed?.stop();
    bed = undefined;
  });

  it(`${MESSAGES} messages: 1 worker, 2 join (scale up), then 2 leave with SIGTERM (scale down): the joiners take work, the leavers drain, nothing lost or sent twice`, async (t) => {
    const b = await FaultBed.start({ workers: 1 });
    bed = b;
    const [joinerA, joinerB] = await scaleUpFromOne(b);
    assert.ok(joinerA !== undefined && joinerB !== undefined);
    // Scale down: the first worker and one joiner leave; the other joiner stays and finishes the run.
    const leaving = [0, joinerA];
    const startedAt = Date.now();
    await Promise.all(leaving.map((i) => b.kill(i, 'SIGTERM', false)));
    const endedAt = Date.now();
    for (const i of leaving) {
      const exit = await b.workers[i]?.exited;
      assert.equal(exit?.code, 0, `worker ${i} drained its messages in flight and exited 0\n${b.outputs()}`);
    }
    const deliveredAtLeave = b.sink.messages.length;
    assert.ok(deliveredAtLeave < MESSAGES, `the run was still going when they left (${deliveredAtLeave})`);
    const stayerAtLeave = deliveredBy(b.workers[joinerB]);

    const row = await b.settle('scale 1 → 3 → 1 (SIGTERM x2)', { startedAt, endedAt }, 60_000);
    assertBooksBalance(row, b.outputs());
    assert.equal(row.delivered, MESSAGES, 'every message delivered');
    assert.equal(row.duplicates, 0, 'a drained shutdown sends nothing twice');
    assert.equal(row.ambiguous, 0, 'no transaction was cut off');
    const perWorker = b.workers.map((w) => deliveredBy(w));
    t.diagnostic(
      `delivered per worker: ${perWorker.join(', ')} (first worker, leaving joiner, staying joiner); ` +
        `${deliveredAtLeave} at the sink when two left`,
    );
    for (const [i, n] of perWorker.entries())
      assert.ok(n > 0, `worker ${i} delivered (${perWorker.join(', ')})`);
    assert.ok(
      (perWorker[joinerB] ?? 0) > stayerAtLeave,
      `the remaining worker took over the rest (${stayerAtLeave} → ${perWorker[joinerB]})`,
    );
    // Each message's outcome was recorded by exactly one worker: the logs add up to the books.
    assert.equal(
      perWorker.reduce((a, b) => a + b, 0),
      MESSAGES,
      `per-worker deliveries ${perWorker.join(' + ')} add up to the messages`,
    );
    assert.equal(b.starts, 3, 'no worker was restarted');
  });

  it(`${MESSAGES} messages: 1 worker, 2 join, then a joiner is killed with SIGKILL: its jobs run again after their locks expire; books balance`, async (t) => {
    const b = await FaultBed.start({ workers: 1 });
    bed = b;
    const [victim, survivor] = await scaleUpFromOne(b);
    assert.ok(victim !== undefined && survivor !== undefined);
    const startedAt = Date.now();
    await b.kill(victim, 'SIGKILL', false);
    const endedAt = Date.now();
    assert.equal((await b.workers[victim]?.exited)?.signal, 'SIGKILL');
    const deliveredAtKill = b.sink.messages.length;
    assert.ok(deliveredAtKill < MESSAGES, `the run was still going at the kill (${deliveredAtKill})`);
    const victimDelivered = deliveredBy(b.workers[victim]);

    const row = await b.settle('scale 1 → 3, SIGKILL a joiner', { startedAt, endedAt }, 60_000);
    assertBooksBalance(row, b.outputs());
    assert.equal(row.delivered, MESSAGES, 'every message delivered, the killed worker’s included');
    // Killed between a final dot and the relay's reply, a message is ambiguous: resent and counted.
    assert.ok(row.duplicates <= row.ambiguous, `duplicates ${row.duplicates} <= ambiguous ${row.ambiguous}`);
    assert.ok(victimDelivered >= JOINED_AFTER, `the killed worker had taken work (${victimDelivered})`);
    for (const i of [0, survivor]) {
      assert.ok(deliveredBy(b.workers[i]) > 0, `worker ${i} delivered`);
    }
    t.diagnostic(
      `delivered per worker: ${b.workers.map((w) => deliveredBy(w)).join(', ')} (first worker, killed ` +
        `joiner, surviving joiner); ${deliveredAtKill} at the sink at the kill`,
    );
    assert.equal(b.starts, 3, 'no worker was restarted');
  });
});
