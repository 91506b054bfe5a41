#!/usr/bin/env node
// Renders per second of a compiled message (@mailroom/mime) against nodemailer's MailComposer building the
// same message, on one core. The message is the benchmark's newsletter: 2,048 body bytes (30 % text/plain,
// 70 % HTML, multipart/alternative), the reader's name merged into subject, text and HTML, plus per-reader
// List-Unsubscribe headers.
//   npm run build && node bench/mime-render.mjs [--n 20000] [--runs 5] [--concurrency 64]
// MailComposer gets every advantage: its subject and bodies are merged before the clock starts (it only
// composes), and it is measured both one build at a time and with --concurrency builds in flight; the
// faster of the two is compared. Each run's figure is N / elapsed; the median of the runs is reported.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import MailComposer from 'nodemailer/lib/mail-composer';
import { parseMailbox } from '@mailroom/core';
import { compileTemplate } from '@mailroom/mime';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '5' },
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

const BODY_BYTES = 2048;
const TEXT_BYTES = Math.round(BODY_BYTES * 0.3);
const HTML_BYTES = BODY_BYTES - TEXT_BYTES;
const FROM = { name: 'Mailroom Weekly', address: 'weekly@news.example.test' };
const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Linus'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman'];
const FILLER =
  'Queues that survive restarts, retries that back off, bounces that stop at once and metrics you can alert on. ';
/** The longest name, so every rendered body is at most BODY_BYTES. */
const NAME_ALLOWANCE = 'Frances Thompson'.length;
const URL_ALLOWANCE = 'https://news.example.test/u/20000'.length;
const DATE = new Date('2025-03-04T10:05:06Z');

const fill = (length) => FILLER.repeat(Math.ceil(length / FILLER.length)).slice(0, length);

const textHead = "Hello {{name}},\n\nHere is this week's issue, picked for you.\n\n";
const textTail = '\n\nUnsubscribe: {{unsubscribeUrl}}\n';
const htmlHead =
  '<!doctype html><html><body style="font-family:sans-serif;max-width:640px;margin:auto">\n' +
  "<h1>Mailroom Weekly</h1>\n<p>Dear {{name}}, here is this week's issue, picked for you.</p>\n" +
  '<div style="margin:1.5em 0;padding:1em;border:1px solid #ddd;border-radius:6px"><p>';
const htmlTail =
  '</p>\n<p><a href="https://news.example.test/articles/42">Read more</a></p></div>\n' +
  '<p style="color:#777;font-size:small"><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>\n' +
  '</body></html>\n';
const staticChars = (s) => s.replace(/\{\{\w+\}\}/g, '').length;
const textFill = TEXT_BYTES - staticChars(textHead + textTail) - NAME_ALLOWANCE - URL_ALLOWANCE;
const htmlFill = HTML_BYTES - staticChars(htmlHead + htmlTail) - NAME_ALLOWANCE - URL_ALLOWANCE;

const template = {
  from: FROM,
  subject: '{{name}}, your Mailroom Weekly is here',
  text: textHead + fill(textFill) + textTail,
  html: htmlHead + fill(htmlFill) + htmlTail,
};

/** Readers, built before any clock starts. */
const readers = Array.from({ length: N }, (_, i) => {
  const name = `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}`;
  const unsubscribeUrl = `https://news.example.test/u/${i + 1}`;
  return {
    to: parseMailbox({ name, address: `reader-${i + 1}@example.test` }, 'to'),
    messageId: `<01jnmr6k7a${String(i).padStart(16, '0')}@news.example.test>`,
    vars: { name, unsubscribeUrl },
    headers: {
      'List-Unsubscribe': `<${unsubscribeUrl}>`,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  };
});

/** The same messages merged in advance, for MailComposer. */
const merged = readers.map((r) => {
  const merge = (s) =>
    s.replaceAll('{{name}}', r.vars.name).replaceAll('{{unsubscribeUrl}}', r.vars.unsubscribeUrl);
  return {
    from: FROM,
    to: r.to,
    subject: merge(template.subject),
    text: merge(template.text),
    html: merge(template.html), // the names need no HTML escaping
    headers: r.headers,
    messageId: r.messageId,
    date: DATE,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
});

const compiled = compileTemplate(template);

function renderCompiled(i) {
  const r = readers[i];
  return compiled.render({ to: r.to, messageId: r.messageId, date: DATE, vars: r.vars, headers: r.headers });
}

function composeOne(i) {
  return new MailComposer(merged[i]).compile().build();
}

async function timeSequential(count, cpu = []) {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < count; i++) await composeOne(i);
  cpu.push(cpuSeconds(cpuStart));
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function timeConcurrent(count) {
  const start = process.hrtime.bigint();
  let next = 0;
  const lane = async () => {
    while (next < count) await composeOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, lane));
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** CPU seconds this process used since `since` (user + system). */
function cpuSeconds(since) {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

/** Wall seconds of rendering `count` messages; `cpu` receives the CPU seconds spent. */
function timeCompiled(count, cpu = []) {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += renderCompiled(i).length;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  cpu.push(cpuSeconds(cpuStart));
  if (bytes === 0) throw new Error('nothing rendered');
  return seconds;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (seconds) => Math.round(N / seconds);
const fmt = (n) => n.toLocaleString('en-US');

// Sizes and a sanity check that both produce the same kind of message.
const sampleCompiled = renderCompiled(0);
const sampleComposed = await composeOne(0);
const bodyBytes = Buffer.byteLength(merged[0].text) + Buffer.byteLength(merged[0].html);

// Warm-up: JIT both paths.
timeCompiled(Math.min(N, 2000));
await timeSequential(Math.min(N, 500));
await timeConcurrent(Math.min(N, 500));

const compiledRuns = [];
const sequentialRuns = [];
const concurrentRuns = [];
const compiledCpu = [];
const sequentialCpu = [];
for (let run = 0; run < RUNS; run++) {
  compiledRuns.push(rate(timeCompiled(N, compiledCpu)));
  sequentialRuns.push(rate(await timeSequential(N, sequentialCpu)));
  concurrentRuns.push(rate(await timeConcurrent(N)));
}

const compiledMedian = median(compiledRuns);
const sequentialMedian = median(sequentialRuns);
const concurrentMedian = median(concurrentRuns);
const composerBest = Math.max(sequentialMedian, concurrentMedian);
console.log(
  `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores (one used)`,
);
console.log(
  `message: ${fmt(bodyBytes)} body bytes (text ${fmt(Buffer.byteLength(merged[0].text))}, html ${fmt(Buffer.byteLength(merged[0].html))}); ` +
    `compiled ${fmt(sampleCompiled.length)} bytes, MailComposer ${fmt(sampleComposed.length)} bytes`,
);
console.log(`N = ${fmt(N)} per run, ${RUNS} runs, median:`);
console.log(
  `  compiled template render      ${fmt(compiledMedian)} msgs/s   runs: ${compiledRuns.map(fmt).join(', ')}`,
);
console.log(
  `  MailComposer, one at a time   ${fmt(sequentialMedian)} msgs/s   runs: ${sequentialRuns.map(fmt).join(', ')}`,
);
console.log(
  `  MailComposer, ${CONCURRENCY} in flight     ${fmt(concurrentMedian)} msgs/s   runs: ${concurrentRuns.map(fmt).join(', ')}`,
);
console.log(`  speed-up over the faster MailComposer figure: ${(compiledMedian / composerBest).toFixed(1)}x`);
// On a shared machine wall time includes waiting for the CPU; per CPU-second (all of the process's threads,
// GC included) shows the work itself.
console.log(
  `per CPU-second (median): compiled ${fmt(rate(median(compiledCpu)))}, ` +
    `MailComposer one at a time ${fmt(rate(median(sequentialCpu)))}; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
);
