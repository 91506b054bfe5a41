import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { findExecutable } from './find-executable.mjs';

const require = createRequire(import.meta.url);
const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * @typedef {object} MachineFacts
 * @property {number} nproc
 * @property {string} cpuModel
 * @property {number} memoryGiB
 * @property {string} kernel
 * @property {string} os
 * @property {string} node
 * @property {string | null} redis `redis-server --version`'s v=
 * @property {string | null} postfix Postfix mail_version, when installed
 * @property {Record<string, string | null>} packages versions of the libraries the systems use
 * @property {number[]} loadAverage 1, 5 and 15 minute load when the benchmark started
 * @property {string | null} commit the checkout's commit, when it is a git checkout
 * @property {number | null} uncommittedFiles files under apps/ and packages/ that differ from the commit
 *   (the build measured may include them)
 */

/** @returns {MachineFacts} what a reader needs to compare figures between machines */
export function machineFacts() {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    os: osName(),
    node: process.version,
    redis: run('redis-server', ['--version'])?.match(/v=(\S+)/)?.[1] ?? null,
    postfix: run('postconf', ['-d', '-h', 'mail_version']) ?? null,
    packages: Object.fromEntries(
      ['bullmq', 'ioredis', 'nodemailer', 'smtp-server'].map((name) => [name, packageVersion(name)]),
    ),
    loadAverage: loadavg().map((v) => Math.round(v * 100) / 100),
    commit: run('git', ['rev-parse', '--short', 'HEAD']) ?? null,
    uncommittedFiles: uncommittedFiles(),
  };
}

/**
 * @param {string} name
 * @param {string[]} args
 * @returns {string | undefined} trimmed standard output, or undefined when the tool is missing or fails
 */
function run(name, args) {
  const path = findExecutable(name);
  if (!path) return undefined;
  try {
    return execFileSync(path, args, {
      cwd: REPO,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

/** @returns {number | null} */
function uncommittedFiles() {
  const status = run('git', ['status', '--porcelain', '--', 'apps', 'packages']);
  return status === undefined ? null : status.split('\n').filter(Boolean).length;
}

/** @param {string} name */
function packageVersion(name) {
  try {
    return /** @type {{ version: string }} */ (require(`${name}/package.json`)).version;
  } catch {
    return null;
  }
}

function osName() {
  try {
    return readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
