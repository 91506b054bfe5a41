import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { killAllChildren, spawnNode, type ChildProcessHandle } from '../../harness/processes.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const RUN = join(ROOT, 'bench', 'run.mjs');
/** A smoke run takes a few seconds; this bounds it on a machine busy with other suites. */
const SMOKE_TIMEOUT_MS = 100_000;

interface ProcessFigure {
  name: string;
  pid: number;
  percent: number;
  rss: { startMiB: number; endMiB: number; peakMiB: number } | null;
}
interface ProxyStats {
  rttMs: number;
  connections: number;
  peakOpen: number;
  peakInUse: number;
  chunks: number;
}
interface RunFigures {
  n: number;
  delivered: number;
  timeBoxed: boolean;
  seconds: number;
  msgsPerSecond: number;
  proxy: ProxyStats | null;
  cpu: { processes: ProcessFigure[] };
  extra: Record<string, number>;
}
type RunOutcome = RunFigures | { error: { code: string; message: string } };
interface BenchResults {
  settings: {
    n: number;
    rounds: number;
    connections: number;
    rttMs: number;
    systems: Record<string, { smtpConnectionsPerWorker?: number[]; workerEnv?: Record<string, string> }>;
  };
  skipped: unknown[];
  rounds: { runs: Record<string, RunOutcome> }[];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Runs bench/run.mjs to its end (bounded by SMOKE_TIMEOUT_MS) and returns its exit and output. */
async function runBench(args: string[]): Promise<{ child: ChildProcessHandle; code: number | null }> {
  const child = spawnNode(RUN, args, { cwd: ROOT });
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    child.exited,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), SMOKE_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  assert.notEqual(exit, 'timeout', `the benchmark did not finish in time:\n${child.output()}`);
  return { child, code: exit === 'timeout' ? null : exit.code };
}

/** The completed runs of round 1, by system id; fails on a run that ended in an error. */
function completedRuns(results: BenchResults): Record<string, RunFigures> {
  assert.equal(results.rounds.length, 1);
  const runs: Record<string, RunFigures> = {};
  for (const [id, run] of Object.entries(results.rounds[0]!.runs)) {
    assert.ok(!('error' in run), `${id}: ${JSON.stringify(run)}`);
    runs[id] = run;
  }
  return runs;
}

/** Every process a run measured, except the benchmark's own, has exited. */
function assertStopped(id: string, run: RunFigures, benchPid: number): void {
  for (const p of run.cpu.processes) {
    assert.ok(!isAlive(p.pid) || p.pid === benchPid, `${id}: ${p.name} (pid ${p.pid}) still runs`);
  }
}

describe('bench/run.mjs', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailroom-bench-smoke-'));
  });

  after(async () => {
    await killAllChildren();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    '--smoke measures Mailroom and the naive sender end to end, prints both and stops what it started',
    { timeout: SMOKE_TIMEOUT_MS + 10_000 },
    async () => {
      const out = join(dir, 'smoke.json');
      const { child, code } = await runBench(['--smoke', '--systems', 'mailroom,naive', '--out', out]);
      assert.equal(code, 0, child.output());

      const output = child.output();
      for (const label of ['Mailroom', 'naive sender']) {
        const row = new RegExp(`^\\| ${label}[^|]* \\| ([\\d,]+) \\|`, 'm').exec(output);
        assert.ok(row, `no table row with a figure for ${label}:\n${output}`);
        assert.ok(Number(row[1]?.replaceAll(',', '')) > 0, row[0]);
      }

      const results = JSON.parse(readFileSync(out, 'utf8')) as BenchResults;
      assert.equal(results.settings.n, 300);
      assert.equal(results.settings.rounds, 1);
      assert.equal(results.settings.rttMs, 0);
      assert.deepEqual(results.skipped, []);
      const runs = completedRuns(results);
      assert.deepEqual(Object.keys(runs).sort(), ['mailroom', 'naive']);
      for (const [id, run] of Object.entries(runs)) {
        assert.equal(run.timeBoxed, false, id);
        assert.ok(run.delivered >= 300, `${id}: the sink counted ${run.delivered} of 300`);
        assert.ok(run.msgsPerSecond > 0, id);
        assert.equal(run.proxy, null, `${id}: no latency proxy without --rtt-ms`);
        assertStopped(id, run, child.pid);
      }
      // The ledger keeps a record of every message after delivery, so Redis holds more than before.
      const redisBytes = runs.mailroom!.extra.redisBytesPerMessage;
      assert.ok(redisBytes !== undefined && redisBytes > 0, `Redis bytes per message: ${redisBytes}`);
      const workers = runs.mailroom!.cpu.processes.filter((p) => p.name.startsWith('mailroom worker'));
      assert.equal(workers.length, 2, 'two worker processes');
      for (const worker of workers) {
        assert.ok(worker.percent > 0, `${worker.name} used CPU while delivering: ${JSON.stringify(worker)}`);
        assert.ok(
          (worker.rss?.startMiB ?? 0) > 0,
          `${worker.name} has a resident size: ${JSON.stringify(worker)}`,
        );
      }
    },
  );

  it(
    '--rtt-ms puts the latency proxy in the path, keeps each system within --connections and passes variant settings to the workers',
    { timeout: SMOKE_TIMEOUT_MS + 10_000 },
    async () => {
      const out = join(dir, 'latency.json');
      const n = 100;
      const connections = 4;
      const rttMs = 30;
      const { child, code } = await runBench([
        '--smoke',
        '--n',
        String(n),
        '--rtt-ms',
        String(rttMs),
        '--connections',
        String(connections),
        '--mailroom-variant',
        'short:MAILROOM_SMTP_MAX_MESSAGES_PER_CONNECTION=10',
        '--systems',
        'mailroom,mailroom-short',
        '--out',
        out,
      ]);
      assert.equal(code, 0, child.output());
      assert.match(
        child.output(),
        /^\| Mailroom \(short: MAILROOM_SMTP_MAX_MESSAGES_PER_CONNECTION=10\) \| [\d,]+ \| /m,
      );

      const results = JSON.parse(readFileSync(out, 'utf8')) as BenchResults;
      assert.equal(results.settings.rttMs, rttMs);
      assert.equal(results.settings.connections, connections);
      assert.deepEqual(results.settings.systems.mailroom?.smtpConnectionsPerWorker, [2, 2]);
      assert.equal(
        results.settings.systems['mailroom-short']?.workerEnv?.MAILROOM_SMTP_MAX_MESSAGES_PER_CONNECTION,
        '10',
      );
      const runs = completedRuns(results);
      for (const id of ['mailroom', 'mailroom-short']) {
        const run = runs[id];
        assert.ok(run, `${id} ran`);
        assert.ok(run.delivered >= n, `${id}: the sink counted ${run.delivered} of ${n}`);
        assertStopped(id, run, child.pid);
        const proxy = run.proxy;
        assert.ok(proxy, `${id}: went through the proxy`);
        assert.equal(proxy.rttMs, rttMs);
        assert.ok(proxy.chunks > 0, `${id}: ${JSON.stringify(proxy)}`);
        // A connection being replaced is still open while it says goodbye: only those in use are bounded.
        assert.ok(
          proxy.peakInUse >= 1 && proxy.peakInUse <= connections,
          `${id}: at most ${connections} connections in use at once: ${JSON.stringify(proxy)}`,
        );
        // A lower bound that a slow machine cannot break: n messages over at most `connections` connections
        // put at least n / connections messages on one connection, each waiting at least one round trip
        // (the reply to its final dot).
        const floorSeconds = ((n / connections) * rttMs) / 1000;
        assert.ok(
          run.seconds >= floorSeconds,
          `${id}: ${run.seconds} s < ${floorSeconds} s: no latency added?`,
        );
        assert.ok(
          run.cpu.processes.some((p) => p.name === 'latency proxy'),
          `${id}: the proxy's CPU is measured`,
        );
      }
      // Replacing a connection every 10 messages needs at least n / 10 connections: only the variant does.
      const short = runs['mailroom-short']!.proxy!;
      const base = runs.mailroom!.proxy!;
      assert.ok(
        short.connections >= n / 10,
        `the variant's setting reached its workers: ${JSON.stringify(short)}`,
      );
      assert.ok(base.connections < short.connections, `${JSON.stringify(base)} vs ${JSON.stringify(short)}`);
    },
  );

  it('refuses an unknown system with exit code 2 and names the known ones', async () => {
    const { child, code } = await runBench(['--systems', 'sendmail']);
    assert.equal(code, 2, child.output());
    assert.match(child.output(), /unknown system\(s\): sendmail \(known: postfix, naive, bullmq, mailroom\)/);
  });

  it('refuses Mailroom settings the worker does not have, and those the benchmark sets itself', async () => {
    const unknown = await runBench(['--smoke', '--mailroom-env', 'MAILROOM_NO_SUCH_SETTING=1']);
    assert.equal(unknown.code, 2, unknown.child.output());
    assert.match(
      unknown.child.output(),
      /mailroom: MAILROOM_NO_SUCH_SETTING is not a setting of this Mailroom worker/,
    );

    const owned = await runBench(['--smoke', '--mailroom-variant', 'p:MAILROOM_SMTP_MAX_CONNECTIONS=3']);
    assert.equal(owned.code, 2, owned.child.output());
    assert.match(
      owned.child.output(),
      /mailroom-p: MAILROOM_SMTP_MAX_CONNECTIONS cannot be set here: use --connections/,
    );
    assert.doesNotMatch(owned.child.output(), /^round /m, 'nothing ran');
  });
});
