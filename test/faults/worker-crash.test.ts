import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { assertBooksBalance, FaultBed, newsletter, PREFIX } from './fault-bed.js';

const MESSAGES = 5000;
const WORKERS = 3;
/** Kills, one every KILL_EVERY_MS, while work remains; bounded in count. */
const MAX_KILLS = 8;
const KILL_EVERY_MS = 1500;

describe('fault: worker processes killed with SIGKILL during a run', () => {
  let bed: FaultBed | undefined;
  after(async () => bed?.stop());

  it(`${WORKERS} workers, ${MESSAGES} messages, a SIGKILL every ${KILL_EVERY_MS} ms: nothing lost, nothing sent twice`, async () => {
    // slow-20: each reply to the final dot comes 20 ms late, so a run lasts long enough to be killed often
    // and many messages are in the middle of their SMTP transaction when a worker dies.
    bed = await FaultBed.start({ workers: WORKERS });
    await bed.enqueue(newsletter(MESSAGES, () => 'slow-20-'));
    await bed.startWorkers();
    await bed.delivered(200);
    const faultStart = Date.now();
    let kills = 0;
    while (kills < MAX_KILLS && bed.sink.messages.length < MESSAGES * 0.9) {
      await bed.kill(kills % WORKERS, 'SIGKILL');
      kills += 1;
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS));
    }
    const faultEnd = Date.now();
    const row = await bed.settle(
      'worker SIGKILL x' + kills,
      { startedAt: faultStart, endedAt: faultEnd },
      120_000,
    );
    assert.ok(kills >= 4, `the run was interrupted several times (${kills} kills)`);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, MESSAGES, 'every message delivered');
    assert.equal(row.bounced, 0);
    // A worker killed between the final dot and the relay's reply leaves an ambiguous message: resent
    // (default policy) and counted. Every other message arrives exactly once.
    assert.ok(row.duplicates <= row.ambiguous, `duplicates ${row.duplicates} <= ambiguous ${row.ambiguous}`);
    assert.ok(bed.starts >= WORKERS + kills, 'every killed worker was replaced');
  });

  it('a campaign of 3,000 fed in small chunks, a SIGKILL every 1.5 s: no recipient lost or sent twice outside counted ambiguity', async () => {
    await bed?.stop();
    // A low high-water mark, small chunks and small batches: the feeder materialises chunks all through
    // the run, so workers (the feeder's lease holder among them) are killed between its steps too.
    bed = await FaultBed.start({ workers: WORKERS, workerEnv: { MAILROOM_CAMPAIGN_HIGH_WATER: '200' } });
    const template = {
      from: { name: 'Mailroom Faults', address: 'faults@mailroom.example' },
      subject: 'Campaign for {{name}}',
      text: 'Hello {{name}}.\n',
      html: '<p>Hello {{name}}.</p>',
    };
    const recipients = Array.from({ length: 3000 }, (_, i) => ({
      to: `slow-20-reader${i}@example.test`,
      vars: { name: `Reader ${i}` },
    }));
    const receipt = await bed.enqueueCampaign(template, recipients, { chunkSize: 50, batchSize: 10 });
    assert.equal(receipt.accepted, 3000);
    await bed.startWorkers();
    await bed.delivered(200);
    const faultStart = Date.now();
    let kills = 0;
    while (kills < 6 && bed.sink.messages.length < 3000 * 0.9) {
      await bed.kill(kills % WORKERS, 'SIGKILL');
      kills += 1;
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS));
    }
    const row = await bed.settle(
      `campaign, worker SIGKILL x${kills}`,
      { startedAt: faultStart, endedAt: Date.now() },
      120_000,
    );
    assert.ok(kills >= 3, `the campaign was interrupted several times (${kills} kills)`);
    assertBooksBalance(row, bed.outputs());
    assert.equal(row.delivered, 3000, 'every recipient delivered');
    assert.ok(row.duplicates <= row.ambiguous, `duplicates ${row.duplicates} <= ambiguous ${row.ambiguous}`);
    const status = await bed.client.campaignStatus(receipt.id);
    assert.equal(status.counts.accepted, 3000);
    assert.equal(status.counts.terminal.delivered, 3000, 'the campaign counted each recipient once');
    assert.equal(status.counts.pending, 0);
    assert.equal(await bed.conn.zcard(`${PREFIX}:campaigns:feeding`), 0, 'every chunk fed and queued');
  });
});
