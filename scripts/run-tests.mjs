#!/usr/bin/env node
// Runs the compiled test files with node's own test runner.
// Node 20's `node --test` takes file paths, not globs, so the files are collected here.
//
//   node scripts/run-tests.mjs                 every suite, in order: unit, integration, faults
//   node scripts/run-tests.mjs unit faults     only the named suites
//   MAILROOM_TEST_FILTER=ledger node scripts/run-tests.mjs   only files whose path contains "ledger"
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const distRoot = join(root, 'test', 'dist');

/** Suites run one after another; files inside a suite may run side by side. */
const SUITES = [
  { name: 'unit', concurrency: 2 },
  { name: 'integration', concurrency: 2 },
  { name: 'faults', concurrency: 1 },
];

function collect(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out.sort();
}

const wanted = process.argv.slice(2);
const filter = process.env.MAILROOM_TEST_FILTER;
let failed = false;
let ran = 0;
for (const suite of SUITES) {
  if (wanted.length > 0 && !wanted.includes(suite.name)) continue;
  const files = collect(join(distRoot, suite.name)).filter((f) => !filter || f.includes(filter));
  if (files.length === 0) continue;
  ran += files.length;
  console.log(`\n## suite ${suite.name}: ${files.length} file(s)`);
  const reportDir = mkdtempSync(join(tmpdir(), 'mailroom-fault-report-'));
  const reportFile = join(reportDir, 'rows.jsonl');
  const result = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${suite.concurrency}`, ...files.map((f) => relative(root, f))],
    { cwd: root, stdio: 'inherit', env: { ...process.env, MAILROOM_FAULT_REPORT: reportFile } },
  );
  if (result.status !== 0) failed = true;
  if (existsSync(reportFile)) printFaultTable(readFileSync(reportFile, 'utf8'));
  rmSync(reportDir, { recursive: true, force: true });
}

/** The fault suite's accounting, one row per case (test/faults/accounting.ts writes the rows). */
function printFaultTable(jsonl) {
  const rows = jsonl
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  const columns = [
    ['case', (r) => r.case],
    ['accepted', (r) => r.accepted],
    ['delivered', (r) => r.delivered],
    ['bounced', (r) => r.bounced],
    ['expired', (r) => r.expired],
    ['ambiguous', (r) => r.ambiguous],
    [
      'duplicates',
      (r) => `${r.duplicates}${r.unexplainedDuplicates ? ` (${r.unexplainedDuplicates} unexplained)` : ''}`,
    ],
    ['lost', (r) => r.lost],
    ['recovery s', (r) => (r.recoverySeconds === null ? '-' : r.recoverySeconds.toFixed(1))],
  ];
  console.log(
    '\n## fault accounting (accepted = what the producer was told; duplicates = extra copies at the SMTP server)\n',
  );
  console.log(`| ${columns.map(([name]) => name).join(' | ')} |`);
  console.log(`|${columns.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${columns.map(([, get]) => String(get(row))).join(' | ')} |`);
}
if (ran === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
process.exit(failed ? 1 : 0);
