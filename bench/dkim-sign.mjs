#!/usr/bin/env node
// Messages per second of DKIM signing on the send path, on the built @mailroom/mime: the benchmark newsletter
// (about 2 KB of body, multipart/alternative, the reader's name merged, per-reader List-Unsubscribe headers)
// rendered by a compiled template and signed, against rendering alone (the unsigned baseline).
//   npm run build && node bench/dkim-sign.mjs [--n 20000] [--runs 3] [--concurrency 64]
// Rows:
//   render only                      the unsigned baseline
//   render + sign, <algorithm>       DkimSigner.sign on the calling thread: RSA-2048, Ed25519, both (dual)
//   render + signAsync, <algorithm>  DkimSigner.signAsync with --concurrency messages in flight: the private-key
//                                    operation runs on libuv's thread pool, so a second core can take it
// Each run's figure is N / elapsed wall time; the median of the runs is printed, with the runs, and the
// messages per CPU-second of the whole process (every thread, so the thread pool's work is counted).
import { generateKeyPairSync } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parseMailbox } from '@mailroom/core';
import { compileTemplate, createDkimSigner } from '@mailroom/mime';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '64' },
  },
});
const N = Number(values.n);
const RUNS = Number(values.runs);
const CONCURRENCY = Number(values.concurrency);
for (const [name, value] of [
  ['--n', N],
  ['--runs', RUNS],
  ['--concurrency', CONCURRENCY],
]) {
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
}

const DOMAIN = 'news.example.test';
const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Linus'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman'];
const FILLER =
  'Queues that survive restarts, retries that back off, bounces that stop at once and metrics you can alert on. ';
const fill = (length) => FILLER.repeat(Math.ceil(length / FILLER.length)).slice(0, length);
const DATE = new Date();

// The newsletter of bench/mime-render.mjs: about 600 bytes of text and 1,400 of HTML.
const template = compileTemplate({
  from: { name: 'Mailroom Weekly', address: `weekly@${DOMAIN}` },
  subject: '{{name}}, your Mailroom Weekly is here',
  text: `Hello {{name}},\n\nHere is this week's issue, picked for you.\n\n${fill(470)}\n\nUnsubscribe: {{unsubscribeUrl}}\n`,
  html:
    '<!doctype html><html><body style="font-family:sans-serif;max-width:640px;margin:auto">\n' +
    "<h1>Mailroom Weekly</h1>\n<p>Dear {{name}}, here is this week's issue, picked for you.</p>\n" +
    `<div style="margin:1.5em 0;padding:1em;border:1px solid #ddd;border-radius:6px"><p>${fill(900)}` +
    `</p>\n<p><a href="https://${DOMAIN}/articles/42">Read more</a></p></div>\n` +
    '<p style="color:#777;font-size:small"><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>\n</body></html>\n',
  headers: { 'List-Id': `Mailroom Weekly <weekly.${DOMAIN}>` },
});

/** Readers, built before any clock starts. */
const readers = Array.from({ length: N }, (_, i) => {
  const name = `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}`;
  const unsubscribeUrl = `https://${DOMAIN}/u/${i + 1}`;
  return {
    to: parseMailbox({ name, address: `reader-${i + 1}@example.test` }, 'to'),
    messageId: `<01jnmr6k7a${String(i).padStart(16, '0')}@${DOMAIN}>`,
    date: DATE,
    vars: { name, unsubscribeUrl },
    headers: {
      'List-Unsubscribe': `<${unsubscribeUrl}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  };
});

const pem = (key) => key.export({ type: 'pkcs8', format: 'pem' });
const rsaEntry = {
  domain: DOMAIN,
  selector: 'rsa2025',
  privateKey: pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
};
const edEntry = {
  domain: DOMAIN,
  selector: 'ed2025',
  privateKey: pem(generateKeyPairSync('ed25519').privateKey),
};
const signers = {
  'RSA-2048': createDkimSigner([rsaEntry]),
  Ed25519: createDkimSigner([edEntry]),
  'RSA-2048 + Ed25519': createDkimSigner([rsaEntry, edEntry]),
};

const render = (i) => template.render(readers[i]);

/** CPU seconds this process used since `since` (user + system, all threads). */
function cpuSeconds(since) {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

/** Runs `body(count)` and returns { wall, cpu } in seconds. */
async function timed(body, count) {
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  const bytes = await body(count);
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  if (bytes === 0) throw new Error('nothing produced');
  return { wall, cpu: cpuSeconds(cpuStart) };
}

function renderOnly(count) {
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += render(i).length;
  return bytes;
}

function renderAndSign(signer) {
  return (count) => {
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const result = signer.sign(render(i));
      if (!result.signed) throw new Error('message was not signed');
      bytes += result.raw.length;
    }
    return bytes;
  };
}

function renderAndSignAsync(signer) {
  return async (count) => {
    let bytes = 0;
    let next = 0;
    const lane = async () => {
      while (next < count) {
        const result = await signer.signAsync(render(next++));
        if (!result.signed) throw new Error('message was not signed');
        bytes += result.raw.length;
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, lane));
    return bytes;
  };
}

const rows = [
  ['render only (unsigned baseline)', renderOnly],
  ...Object.entries(signers).map(([name, signer]) => [`render + sign, ${name}`, renderAndSign(signer)]),
  ...Object.entries(signers).map(([name, signer]) => [
    `render + signAsync x${CONCURRENCY}, ${name}`,
    renderAndSignAsync(signer),
  ]),
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');

const sample = render(0);
const signedSample = signers['RSA-2048 + Ed25519'].sign(sample).raw;
console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores`);
console.log(
  `message: ${fmt(sample.length)} bytes rendered, ${fmt(signedSample.length)} with both signatures; ` +
    `N = ${fmt(N)} per run, ${RUNS} runs, load average at start ${loadavg()[0]?.toFixed(1)}`,
);

// Warm-up: JIT every path.
for (const [, body] of rows) await body(Math.min(N, 300));

const results = rows.map(([name]) => ({ name, rates: [], cpuRates: [] }));
for (let run = 0; run < RUNS; run++) {
  for (const [index, [, body]] of rows.entries()) {
    const { wall, cpu } = await timed(body, N);
    results[index].rates.push(N / wall);
    results[index].cpuRates.push(N / cpu);
  }
}

const width = Math.max(...results.map((r) => r.name.length));
console.log(`\n${'median msgs/s'.padStart(width + 15)}  ${'per CPU-second'.padStart(14)}  runs (msgs/s)`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(width)}  ${fmt(median(r.rates)).padStart(13)}  ${fmt(median(r.cpuRates)).padStart(14)}  ` +
      r.rates.map(fmt).join(', '),
  );
}
// What signing alone costs: the signed rate with the render time taken out, from the wall-clock medians and
// from the per-CPU-second medians (the steadier of the two on a shared machine).
const alone = (signed, base) => (signed < base ? 1 / (1 / signed - 1 / base) : Number.POSITIVE_INFINITY);
console.log('\nsigning alone (render time taken out): wall msgs/s, msgs per CPU-second');
for (const r of results.slice(1, 1 + Object.keys(signers).length)) {
  const wall = alone(median(r.rates), median(results[0].rates));
  const cpu = alone(median(r.cpuRates), median(results[0].cpuRates));
  console.log(
    `  ${r.name.replace('render + sign, ', '').padEnd(20)} ${fmt(wall).padStart(8)}  ${fmt(cpu).padStart(8)}`,
  );
}
console.log(`load average at end ${loadavg()[0]?.toFixed(1)}`);
