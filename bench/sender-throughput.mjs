#!/usr/bin/env node
// Messages per second of each relay sender alone (no Redis, no queue): the nodemailer pool (RelayTransport)
// and Mailroom's pipelining sender, with and without pipelining the next envelope behind the final dot, and
// with a beforeFinalDot hook (as the worker passes one).
// Pre-built 2 KB messages go to Postfix's smtp-sink on loopback (the Node sink where Postfix is missing),
// then through the test harness's fault proxy adding a round trip. Not a test: figures only.
//
//   npm run build && node bench/sender-throughput.mjs
//   node bench/sender-throughput.mjs --n 20000 --latency-n 4000 --rounds 3 --connections 10,20 --rtt-ms 30
//
// Every round builds a fresh sender, sends N messages keeping `window` sends in flight (what the worker's
// concurrency does), waits for every send to settle and checks the sink counted N more messages. The
// figure is N divided by the time from the first send to the last settlement, median of the rounds; the
// CPU column is this process's user+system CPU time per message (the sender's cost on a 2-core budget).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startProcess } from './lib/child-process.mjs';
import { runCleanups } from './lib/cleanup.mjs';
import { startSink } from './lib/smtp-sink.mjs';
import { spread } from './lib/stats.mjs';
import { waitUntil } from './lib/wait-until.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const smtpModule = new URL('../packages/smtp/dist/pipelining/index.js', import.meta.url);
const faultProxyModule = new URL('../test/dist/harness/fault-proxy.js', import.meta.url);

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '20000' },
    'latency-n': { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '10,20' },
    'latency-connections': { type: 'string', default: '20' },
    'rtt-ms': { type: 'string', default: '30' },
    window: { type: 'string', default: '0' },
    senders: { type: 'string', default: 'nodemailer,pipelining,pipelining-unchained,pipelining-hook' },
    sink: { type: 'string', default: 'auto' },
    'message-bytes': { type: 'string', default: '2048' },
  },
});

const N = Number(values.n);
const LATENCY_N = Number(values['latency-n']);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = values.connections.split(',').map(Number);
const LATENCY_CONNECTIONS = values['latency-connections'].split(',').map(Number);
const RTT_MS = Number(values['rtt-ms']);
const MESSAGE_BYTES = Number(values['message-bytes']);
/** Sends kept in flight; 0 = 10 per connection. */
const WINDOW = Number(values.window);
const SENDERS = values.senders.split(',');
/** Longest one round may take before the benchmark gives up on it. */
const ROUND_LIMIT_MS = 300_000;

const { createSender } = await import(smtpModule.href).catch((err) => {
  throw new Error(`build first (npm run build): ${err.message}`);
});

/** @param {number} i */
function buildMessage(i) {
  const head =
    `From: News <news@mailroom.bench>\r\nTo: <rcpt-${i}@example.test>\r\nSubject: Bench message ${i}\r\n` +
    `Message-ID: <bench-${process.pid}-${i}@mailroom.bench>\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog, and then over the lazy dog again.\r\n';
  let body = '';
  while (head.length + body.length + line.length <= MESSAGE_BYTES) body += line;
  return Buffer.from(
    head + body + 'x'.repeat(Math.max(0, MESSAGE_BYTES - head.length - body.length - 2)) + '\r\n',
  );
}

/**
 * @param {{ kind: string, port: number, connections: number }} options
 */
function senderFor({ kind, port, connections }) {
  /** @type {import('../packages/smtp/dist/index.js').RelayConfig} */
  const config = {
    name: 'bench',
    host: '127.0.0.1',
    port,
    tlsMode: 'none',
    verifyCertificates: true,
    maxConnections: connections,
    maxMessagesPerConnection: 100_000,
    connectionTimeoutMs: 10_000,
    greetingTimeoutMs: 10_000,
    socketTimeoutMs: 60_000,
    clientName: 'bench.mailroom.test',
  };
  if (kind === 'pipelining-unchained')
    return createSender(config, 'pipelining', { pipelineTransactions: false });
  if (kind === 'pipelining-hook') return createSender(config, 'pipelining');
  return createSender(config, kind);
}

/**
 * One measured round.
 * @param {{ kind: string, port: number, connections: number, messages: Buffer[], sink: { count(): number } }} o
 */
async function round({ kind, port, connections, messages, sink }) {
  const sender = senderFor({ kind, port, connections });
  const window = WINDOW > 0 ? WINDOW : connections * 10;
  const before = sink.count();
  // `pipelining-hook`: a beforeFinalDot hook that resolves at once, as the worker's ledger write would
  // (minus the Redis round trip): the body and the final dot then go out in two writes.
  const hooks = kind === 'pipelining-hook' ? { beforeFinalDot: () => Promise.resolve() } : undefined;
  let next = 0;
  let failed = 0;
  /** @type {string | undefined} */
  let firstFailure;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const lane = async () => {
    while (next < messages.length) {
      const i = next++;
      try {
        await sender.send({ from: 'news@mailroom.bench', to: `rcpt-${i}@example.test` }, messages[i], hooks);
      } catch (err) {
        failed++;
        firstFailure ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  let timer;
  await Promise.race([
    Promise.all(Array.from({ length: Math.min(window, messages.length) }, lane)),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${kind}: round took over ${ROUND_LIMIT_MS} ms`)),
        ROUND_LIMIT_MS,
      );
    }),
  ]);
  clearTimeout(timer);
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  sender.close();
  if (failed > 0)
    throw new Error(`${kind}: ${failed} of ${messages.length} sends failed, first: ${firstFailure}`);
  // smtp-sink counts a message when it reads the final dot; every accepted message must show up.
  await waitUntil(() => sink.count() - before >= messages.length, {
    timeoutMs: 10_000,
    what: `the sink to count ${messages.length} messages`,
  });
  return {
    perSecond: (messages.length / elapsedMs) * 1000,
    cpuMicrosPerMessage: (cpu.user + cpu.system) / messages.length,
  };
}

/** Starts the test harness's fault proxy in latency mode in a child process (its CPU is not ours). */
async function startLatencyProxy(targetPort, rttMs) {
  const script = `
    const { startFaultProxy } = await import(${JSON.stringify(faultProxyModule.href)});
    const proxy = await startFaultProxy({ targetPort: ${targetPort}, mode: { kind: 'latency', ms: ${rttMs / 2} } });
    process.stdout.write('listening ' + proxy.port + '\\n');
    process.on('SIGTERM', () => proxy.close().then(() => process.exit(0)));
  `;
  const child = startProcess(process.execPath, ['--input-type=module', '-e', script], {
    name: 'fault proxy',
    cwd: root,
  });
  const match = await child.waitForOutput(/listening (\d+)/, 10_000);
  return { port: Number(match[1]), stop: () => child.stop({ graceMs: 3000 }) };
}

/**
 * @param {{ title: string, port: number, connectionsList: number[], count: number, sink: { count(): number } }} o
 */
async function measure({ title, port, connectionsList, count, sink }) {
  const messages = Array.from({ length: count }, (_, i) => buildMessage(i));
  const rows = [];
  for (const connections of connectionsList) {
    /** @type {Map<string, { perSecond: number[], cpu: number[] }>} */
    const results = new Map(SENDERS.map((kind) => [kind, { perSecond: [], cpu: [] }]));
    // Rounds interleave the senders, so a slow moment of the machine does not hit one sender only.
    for (let r = 0; r < ROUNDS; r++) {
      for (const kind of SENDERS) {
        const result = await round({ kind, port, connections, messages, sink });
        results.get(kind).perSecond.push(result.perSecond);
        results.get(kind).cpu.push(result.cpuMicrosPerMessage);
        process.stderr.write(
          `  ${title}, ${connections} connections, ${kind}, round ${r + 1}: ${result.perSecond.toFixed(0)} msg/s\n`,
        );
      }
    }
    for (const [kind, { perSecond, cpu }] of results) {
      const rate = spread(perSecond);
      rows.push(
        `| ${title} | ${connections} | ${kind} | ${rate.median.toFixed(0)} | ${rate.min.toFixed(0)}–${rate.max.toFixed(0)} | ${spread(cpu).median.toFixed(0)} |`,
      );
    }
  }
  return rows;
}

async function main() {
  const sink = await startSink({ kind: /** @type {'auto' | 'smtp-sink' | 'node'} */ (values.sink) });
  const rows = [];
  try {
    process.stderr.write(`sink: ${sink.kind}; ${N} messages of ${MESSAGE_BYTES} bytes; ${ROUNDS} rounds\n`);
    rows.push(
      ...(await measure({
        title: `loopback, ${sink.kind}`,
        port: sink.port,
        connectionsList: CONNECTIONS,
        count: N,
        sink,
      })),
    );
    if (RTT_MS > 0 && LATENCY_N > 0) {
      const proxy = await startLatencyProxy(sink.port, RTT_MS);
      try {
        rows.push(
          ...(await measure({
            title: `+${RTT_MS} ms round trip (fault proxy), ${sink.kind}`,
            port: proxy.port,
            connectionsList: LATENCY_CONNECTIONS,
            count: LATENCY_N,
            sink,
          })),
        );
      } finally {
        await proxy.stop();
      }
    }
  } finally {
    await sink.stop();
  }
  console.log(`\nSender throughput (node ${process.version}, median of ${ROUNDS} rounds)\n`);
  console.log('| path | connections | sender | msg/s (median) | range | CPU µs/msg |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`sender-throughput: ${err instanceof Error ? err.stack : String(err)}\n`);
  await runCleanups();
  process.exitCode = 1;
}
