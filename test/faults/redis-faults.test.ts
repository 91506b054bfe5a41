import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { assertBooksBalance, FaultBed, newsletter } from './fault-bed.js';

const MESSAGES = 2000;

describe('fault: Redis crashes, outages and pauses', () => {
  let bed: FaultBed | undefined;
  afterEach(async () => {
    await bed?.stop();
    bed = undefined;
  });

  it('redis-server killed with SIGKILL mid-run and restarted on the same AOF: nothing lost', async () => {
    bed = await FaultBed.start({ workers: 2 });
    await bed.enqueue(newsletter(MESSAGES, () => 'slow-10-'));
    await bed.startWorkers();
    await bed.delivered(300);
    const startedAt = Date.now();
    await bed.redis.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    await bed.redis.restart();
    const endedAt = Date.now();
    const row = await bed.settle('redis SIGKILL + restart', { startedAt, endedAt });
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.ok(
      row.recoverySeconds !== null && row.recoverySeconds <= 30,
      `recovered in ${row.recoverySeconds}s`,
    );
  });

  it('Redis down for 30 s, then back: workers wait, then finish everything', async () => {
    bed = await FaultBed.start({ workers: 2 });
    await bed.enqueue(newsletter(MESSAGES, () => 'slow-10-'));
    await bed.startWorkers();
    await bed.delivered(300);
    const startedAt = Date.now();
    await bed.redis.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 30_000));
    await bed.redis.restart();
    const endedAt = Date.now();
    const row = await bed.settle('redis down 30 s', { startedAt, endedAt });
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.ok(
      row.recoverySeconds !== null && row.recoverySeconds <= 30,
      `recovered in ${row.recoverySeconds}s`,
    );
  });

  it('Redis paused (CLIENT PAUSE) longer than the job lock: no message sent twice outside counted ambiguity', async () => {
    bed = await FaultBed.start({ workers: 2 });
    await bed.enqueue(newsletter(MESSAGES, () => 'slow-10-'));
    await bed.startWorkers();
    await bed.delivered(300);
    const startedAt = Date.now();
    // The workers' lock is 4 s: a 6 s pause lets every active job's lock run out meanwhile.
    await bed.redis.pause(6000);
    await new Promise((r) => setTimeout(r, 6000));
    const endedAt = Date.now();
    const row = await bed.settle('redis CLIENT PAUSE 6 s', { startedAt, endedAt });
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.ok(
      row.recoverySeconds !== null && row.recoverySeconds <= 30,
      `recovered in ${row.recoverySeconds}s`,
    );
  });
});

describe('fault: a deploy (SIGTERM to every worker mid-run)', () => {
  let bed: FaultBed | undefined;
  afterEach(async () => {
    await bed?.stop();
    bed = undefined;
  });

  it('workers drain and exit 0; their replacements finish the run; nothing lost or repeated', async () => {
    bed = await FaultBed.start({ workers: 3 });
    await bed.enqueue(newsletter(MESSAGES, () => 'slow-20-'));
    await bed.startWorkers();
    await bed.delivered(300);
    const startedAt = Date.now();
    const exits = await bed.stopAll('SIGTERM');
    for (const exit of exits) assert.equal(exit.code, 0, `clean exit after draining\n${bed.outputs()}`);
    assert.ok(bed.sink.messages.length < MESSAGES, 'the run was interrupted');
    await bed.restartAll();
    const endedAt = Date.now();
    const row = await bed.settle('deploy: SIGTERM all workers', { startedAt, endedAt });
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES);
    assert.equal(row.duplicates, 0, 'a drained shutdown sends nothing twice');
    assert.equal(row.ambiguous, 0);
  });
});
