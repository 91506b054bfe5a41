import { startSink } from './smtp-sink.mjs';
import { startLatencyProxy } from './latency-proxy.mjs';
import { startProcessSampler } from './process-sampler.mjs';
import { waitUntil } from './wait-until.mjs';
import { BenchTimeoutError } from './bench-errors.mjs';

/** Limit for starting a system's processes (Redis, workers, Postfix) before the clock starts. */
const SET_UP_TIMEOUT_MS = 60_000;

/**
 * How a run is shaped: the same for every system of a benchmark.
 * @typedef {object} RunSettings
 * @property {number} connections SMTP connections a system may open to the sink at once, in total over
 *   its processes (systems without such a setting say what they do instead)
 * @property {number} rttMs round trip added between the systems and the sink by the latency proxy; 0 = no
 *   proxy, the systems talk to the sink directly
 */

/**
 * A system under test. It is set up before the clock starts (processes started and ready, messages built),
 * hands its N messages over once the clock runs, and is torn down after the run whatever happened.
 * @typedef {object} BenchSystem
 * @property {string} id short name used on the command line (`--systems postfix,mailroom`)
 * @property {string} label name in the report
 * @property {() => string | undefined} unavailableReason why it cannot run here, or undefined
 * @property {(settings: RunSettings) => Record<string, unknown>} settings everything that shapes its
 *   figures, for the report; throws a BenchArgsError when the settings do not fit the system
 * @property {(context: SetUpContext) => Promise<PreparedSystem>} setUp
 */

/**
 * @typedef {RunSettings & { n: number, relayPort: number, timeoutMs: number }} SetUpContext
 *   `relayPort`: where on 127.0.0.1 the system delivers (the sink, or the latency proxy in front of it);
 *   `timeoutMs`: limit for starting the system's processes
 */

/**
 * @typedef {object} PreparedSystem
 * @property {import('./process-sampler.mjs').ProcessTarget[]} processes the system's processes, measured
 * @property {() => Promise<void>} handOver hands all n messages over (enqueue, inject, send); resolves
 *   when the last one was accepted
 * @property {() => void} [assertHealthy] throws when one of the system's processes died
 * @property {() => Promise<boolean>} [isDrained] a further end condition checked once the sink has
 *   counted n (Postfix: its queue is empty)
 * @property {boolean} [steady] the system sends at the same rate from the first message to the last (it
 *   has no queue to fill or drain): its run may end after `steadyMaxS` seconds with fewer than n messages,
 *   and its rate is what the sink counted by then
 * @property {string} [version] what identifies the code that ran (a build fingerprint), for the report
 * @property {() => Promise<Record<string, number>>} [figuresAfterRun] further figures, read once the
 *   clock has stopped and before the tear-down (Redis memory per message)
 * @property {() => Promise<void>} tearDown stops everything setUp started
 */

/**
 * @typedef {object} RunFigures
 * @property {number} n messages asked for
 * @property {number} delivered what the sink had counted when the clock stopped (more than n means
 *   duplicates; fewer means the run was time-boxed)
 * @property {boolean} timeBoxed a steady system stopped after `steadyMaxS` seconds
 * @property {number} seconds from the first message handed over until the sink counted n (and the
 *   system's own end condition held), or until the time box ended
 * @property {number} msgsPerSecond delivered (at most n) / seconds
 * @property {number | null} handOverSeconds until the last message was handed over (enqueued, injected);
 *   null when the run ended first
 * @property {'smtp-sink' | 'node'} sink
 * @property {import('./latency-proxy.mjs').LatencyProxyStats | null} proxy null without --rtt-ms
 * @property {import('./process-sampler.mjs').SamplerReport} cpu CPU and memory per process, and the
 *   machine's CPU, over the measured window
 * @property {Record<string, number>} extra the system's own figures (see PreparedSystem.figuresAfterRun)
 * @property {string | null} version see PreparedSystem.version
 */

/**
 * Runs one system once against a fresh sink (behind a fresh latency proxy when `rttMs` > 0) and
 * measures it end to end.
 * @param {BenchSystem} system
 * @param {RunSettings & { n: number, sinkKind: import('./smtp-sink.mjs').SinkKind, timeoutMs: number, steadyMaxS: number }} options
 *   `timeoutMs` bounds the measured part; set-up has its own limit of 60 s
 * @returns {Promise<RunFigures>}
 */
export async function measureRun(system, { n, sinkKind, timeoutMs, steadyMaxS, connections, rttMs }) {
  const sink = await startSink({ kind: sinkKind });
  /** @type {import('./latency-proxy.mjs').LatencyProxy | undefined} */
  let proxy;
  /** @type {PreparedSystem | undefined} */
  let prepared;
  /** @type {Omit<RunFigures, 'proxy'>} */
  let figures;
  /** @type {import('./latency-proxy.mjs').LatencyProxyStats | undefined} */
  let proxyStats;
  /** @type {{ stop: () => import('./process-sampler.mjs').SamplerReport } | undefined} */
  let sampler;
  try {
    proxy = rttMs > 0 ? await startLatencyProxy({ targetPort: sink.port, rttMs }) : undefined;
    prepared = await system.setUp({
      n,
      relayPort: proxy?.port ?? sink.port,
      connections,
      rttMs,
      timeoutMs: SET_UP_TIMEOUT_MS,
    });
    const ready = prepared;
    sampler = startProcessSampler([
      ...ready.processes,
      { name: 'smtp sink', pid: sink.pid },
      ...(proxy ? [{ name: 'latency proxy', pid: proxy.pid }] : []),
      { name: 'bench driver', pid: process.pid },
    ]);
    const started = performance.now();
    const elapsedMs = () => performance.now() - started;
    const boxMs = ready.steady ? Math.min(steadyMaxS * 1000, timeoutMs) : Infinity;
    /** @type {number | undefined} */
    let handedOverAt;
    /** @type {unknown} */
    let handOverError;
    void ready.handOver().then(
      () => {
        handedOverAt = performance.now();
      },
      (/** @type {unknown} */ err) => {
        handOverError = err ?? new Error('hand-over failed');
      },
    );
    const check = () => {
      if (handOverError) throw handOverError;
      ready.assertHealthy?.();
    };
    const remainingMs = () => Math.max(1, timeoutMs - elapsedMs());
    let timeBoxed = false;
    await waitUntil(
      () => {
        check();
        if (sink.count() >= n) return true;
        timeBoxed = elapsedMs() >= boxMs;
        return timeBoxed;
      },
      { timeoutMs: remainingMs(), intervalMs: 10, what: `${system.label}: the sink to count ${n} messages` },
    );
    if (!timeBoxed) {
      await waitUntil(
        async () => {
          check();
          return handedOverAt !== undefined && (ready.isDrained ? ready.isDrained() : true);
        },
        {
          timeoutMs: remainingMs(),
          intervalMs: 20,
          what: `${system.label}: the end of its hand-over${ready.isDrained ? ' and an empty queue' : ''}`,
        },
      );
    }
    const seconds = elapsedMs() / 1000;
    const delivered = sink.count();
    const cpu = sampler.stop();
    const extra = timeBoxed || !ready.figuresAfterRun ? {} : await ready.figuresAfterRun();
    figures = {
      n,
      delivered,
      timeBoxed,
      seconds,
      msgsPerSecond: Math.min(delivered, n) / seconds,
      handOverSeconds: handedOverAt === undefined ? null : (handedOverAt - started) / 1000,
      sink: sink.kind,
      cpu,
      extra,
      version: ready.version ?? null,
    };
  } catch (err) {
    sampler?.stop();
    if (err instanceof BenchTimeoutError) err.message += ` (the sink had counted ${sink.count()})`;
    throw err;
  } finally {
    // A hand-over still running (a time-boxed sender) ends here, when its process is stopped.
    try {
      await prepared?.tearDown();
    } finally {
      try {
        proxyStats = await proxy?.stop();
      } finally {
        await sink.stop();
      }
    }
  }
  return { ...figures, proxy: proxyStats ?? null };
}
