// A private copy of the checkout's compiled workspaces, so that every round of a benchmark runs the same
// code even when the checkout is rebuilt in the middle of it (`tsc -b` rewrites dist/ in place).
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerCleanup } from './cleanup.mjs';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** What runs of a workspace: its manifest, its compiled output and its executables. */
const COPIED = ['package.json', 'dist', 'bin'];

/**
 * @typedef {object} BuildSnapshot
 * @property {string} root the copy; its layout is the checkout's (`apps/cli/bin/mailroom.js`, ...)
 * @property {string} fingerprint SHA-256 (first 16 hex digits) of every copied file, path and content
 * @property {(path: string) => string} path a path inside the copy, given relative to the checkout
 */

/**
 * Copies the compiled output of every workspace (root package.json's `workspaces`, without `test`) to a
 * temporary directory, with a node_modules of its own in which `@mailroom/*` are the copies and every
 * other package is the checkout's (a symbolic link), as is each workspace's own node_modules. The copy
 * is removed when the benchmark ends.
 * @returns {BuildSnapshot}
 */
export function snapshotBuild() {
  const manifest = /** @type {{ workspaces: string[] }} */ (
    JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'))
  );
  const workspaces = manifest.workspaces.filter((w) => w !== 'test');
  const root = mkdtempSync(join(tmpdir(), 'mailroom-bench-build-'));
  registerCleanup(`build snapshot ${root}`, () => rmSync(root, { recursive: true, force: true }));
  cpSync(join(REPO, 'package.json'), join(root, 'package.json'));
  const modules = join(root, 'node_modules');
  mkdirSync(join(modules, '@mailroom'), { recursive: true });
  for (const entry of readdirSync(join(REPO, 'node_modules'))) {
    if (entry !== '@mailroom') symlinkSync(join(REPO, 'node_modules', entry), join(modules, entry));
  }
  const hash = createHash('sha256');
  for (const workspace of workspaces) {
    const from = join(REPO, workspace);
    const to = join(root, workspace);
    mkdirSync(to, { recursive: true });
    for (const part of COPIED) {
      if (existsSync(join(from, part))) cpSync(join(from, part), join(to, part), { recursive: true });
    }
    if (existsSync(join(from, 'node_modules')))
      symlinkSync(join(from, 'node_modules'), join(to, 'node_modules'));
    const { name } = /** @type {{ name: string }} */ (
      JSON.parse(readFileSync(join(from, 'package.json'), 'utf8'))
    );
    mkdirSync(dirname(join(modules, name)), { recursive: true });
    symlinkSync(to, join(modules, name));
    for (const file of filesUnder(to)) {
      hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
    }
  }
  return {
    root,
    fingerprint: hash.digest('hex').slice(0, 16),
    path: (path) => join(root, path),
  };
}

/**
 * @param {string} dir
 * @returns {string[]} regular files under `dir`, sorted, not following symbolic links
 */
function filesUnder(dir) {
  /** @type {string[]} */
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}
