// Reads V8 CPU profiles (`node --cpu-prof`) and says where the time went: self time per function and per
// module (an npm package, a Mailroom workspace, a part of Node), and how often each module is on the
// stack at all.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** A file of a Mailroom workspace: `.../packages/queue/dist/ledger.js` (group 2 is the workspace). */
const WORKSPACE_FILE = /\/(packages|apps)\/([^/]+)\/(?:dist|bin)\//;
/** The frame V8 charges while the process waits for I/O. */
const IDLE = '(idle)';

/**
 * @typedef {object} CallFrame
 * @property {string} functionName
 * @property {string} url
 * @property {number} lineNumber 0-based
 */

/**
 * @typedef {object} ProfileNode
 * @property {number} id
 * @property {CallFrame} callFrame
 * @property {number[]} [children]
 */

/**
 * @typedef {object} CpuProfile
 * @property {ProfileNode[]} nodes
 * @property {number} startTime µs
 * @property {number} endTime µs
 * @property {number[]} samples node id per sample
 * @property {number[]} timeDeltas µs before each sample
 */

/**
 * @typedef {object} ModuleCost
 * @property {string} module
 * @property {number} selfMs time in the module's own functions
 * @property {number} selfPercent of `sampledMs`
 * @property {number} onStackPercent of `sampledMs`, samples with the module anywhere on the stack
 */

/**
 * @typedef {object} FunctionCost
 * @property {string} name function name, `(anonymous)` when it has none
 * @property {string} module
 * @property {string} location file:line inside the module
 * @property {number} selfMs
 * @property {number} selfPercent of `sampledMs`
 */

/**
 * A kind of work, recognized by a frame on the stack (say, everything under nodemailer's MIME composer).
 * @typedef {object} WorkCategory
 * @property {string} label
 * @property {RegExp} frame tested against `functionName@url` of every frame on a sample's stack
 */

/**
 * @typedef {object} ProfileSummary
 * @property {number} files profiles read
 * @property {number} wallMs their durations added up
 * @property {number} sampledMs sampled time not charged to (idle); on a machine short of CPU this includes
 *   time the process was ready to run but waiting for a core
 * @property {ModuleCost[]} modules by self time, largest first
 * @property {FunctionCost[]} functions by self time, largest first
 * @property {{ label: string, onStackPercent: number }[]} categories share of the sampled time with a
 *   frame of each category on the stack, in the order asked (categories may overlap)
 */

/**
 * Adds up one or more profiles (say, of every worker process of a run).
 * @param {readonly string[]} files `.cpuprofile` paths
 * @param {readonly WorkCategory[]} [categories] kinds of work to find on the stacks (default none)
 * @returns {ProfileSummary}
 */
export function summarizeCpuProfiles(files, categories = []) {
  /** @type {Map<string, number>} */
  const moduleSelf = new Map();
  /** @type {Map<string, number>} */
  const moduleOnStack = new Map();
  /** @type {Map<string, FunctionCost>} */
  const functionSelf = new Map();
  const categoryMs = categories.map(() => 0);
  let wallMs = 0;
  let sampledMs = 0;
  for (const file of files) {
    const profile = /** @type {CpuProfile} */ (JSON.parse(readFileSync(file, 'utf8')));
    wallMs += (profile.endTime - profile.startTime) / 1000;
    /** @type {Map<number, ProfileNode>} */
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
    /** @type {Map<number, number>} */
    const parents = new Map();
    for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
    /** @type {Map<number, { modules: string[], categories: number[] }>} per node, computed once */
    const stacks = new Map();
    const onStack = (/** @type {number} */ id) => {
      const cached = stacks.get(id);
      if (cached) return cached;
      /** @type {Set<string>} */
      const modules = new Set();
      /** @type {Set<number>} */
      const found = new Set();
      for (let at = /** @type {number | undefined} */ (id); at !== undefined; at = parents.get(at)) {
        const frame = nodes.get(at)?.callFrame;
        if (!frame || frame.functionName === '(root)') continue;
        modules.add(moduleOf(frame));
        categories.forEach((c, i) => {
          if (c.frame.test(`${frame.functionName}@${frame.url}`)) found.add(i);
        });
      }
      const entry = { modules: [...modules], categories: [...found] };
      stacks.set(id, entry);
      return entry;
    };
    profile.samples.forEach((id, i) => {
      // timeDeltas[i] is the time since the previous sample: it is charged to this sample's frame.
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      const frame = nodes.get(id)?.callFrame;
      if (!frame || frame.functionName === IDLE) return;
      sampledMs += ms;
      const module = moduleOf(frame);
      moduleSelf.set(module, (moduleSelf.get(module) ?? 0) + ms);
      const stack = onStack(id);
      for (const m of stack.modules) moduleOnStack.set(m, (moduleOnStack.get(m) ?? 0) + ms);
      for (const i of stack.categories) categoryMs[i] = (categoryMs[i] ?? 0) + ms;
      const location = frame.url ? `${fileOf(frame.url)}:${frame.lineNumber + 1}` : '–';
      const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`;
      const seen = functionSelf.get(key);
      if (seen) seen.selfMs += ms;
      else {
        functionSelf.set(key, {
          name: frame.functionName || '(anonymous)',
          module,
          location,
          selfMs: ms,
          selfPercent: 0,
        });
      }
    });
  }
  const percent = (/** @type {number} */ ms) => (sampledMs > 0 ? (ms / sampledMs) * 100 : 0);
  return {
    files: files.length,
    wallMs,
    sampledMs,
    modules: [...moduleSelf]
      .map(([module, selfMs]) => ({
        module,
        selfMs,
        selfPercent: percent(selfMs),
        onStackPercent: percent(moduleOnStack.get(module) ?? selfMs),
      }))
      .sort((a, b) => b.selfMs - a.selfMs),
    functions: [...functionSelf.values()]
      .map((f) => ({ ...f, selfPercent: percent(f.selfMs) }))
      .sort((a, b) => b.selfMs - a.selfMs),
    categories: categories.map((c, i) => ({ label: c.label, onStackPercent: percent(categoryMs[i] ?? 0) })),
  };
}

/**
 * The module a frame belongs to: an npm package (`bullmq`, `@ioredis/commands`), a Mailroom workspace
 * (`@mailroom/queue`), a part of Node (`node:net`, `node:streams`), a benchmark file, or one of V8's
 * pseudo-frames (`(garbage collector)`, `(program)`: native code outside JavaScript).
 * @param {CallFrame} frame
 * @returns {string}
 */
export function moduleOf({ functionName, url }) {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) {
    const parts = url.slice('node:'.length).split('/');
    return `node:${parts[0] === 'internal' && parts.length > 1 ? parts[1] : parts[0]}`;
  }
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules >= 0) {
    const [scope = '', name = ''] = path.slice(inModules + '/node_modules/'.length).split('/');
    return scope.startsWith('@') ? `${scope}/${name}` : scope;
  }
  // The checkout's workspaces, or the benchmark's copy of them (bench/lib/build-snapshot.mjs).
  const workspace = WORKSPACE_FILE.exec(path);
  if (workspace) return `@mailroom/${workspace[2]}`;
  return path.startsWith(REPO) ? path.slice(REPO.length) : path;
}

/**
 * @param {string} url
 * @returns {string} the path inside its package or workspace, for a function's location
 */
function fileOf(url) {
  if (!url) return '';
  if (url.startsWith('node:')) return url;
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules >= 0) return path.slice(inModules + '/node_modules/'.length);
  const workspace = WORKSPACE_FILE.exec(path);
  if (workspace) return path.slice(workspace.index + 1);
  return path.startsWith(REPO) ? path.slice(REPO.length) : path;
}

/**
 * The summary as Markdown: the categories of work (if any), modules by self time, then the functions
 * with the most self time.
 * @param {ProfileSummary} summary
 * @param {{ modules?: number, functions?: number }} [limits] rows of each table (default 15 and 25)
 * @returns {string}
 */
export function profileMarkdown(summary, { modules = 15, functions = 25 } = {}) {
  const pct = (/** @type {number} */ v) => v.toFixed(1);
  const lines = [
    `${summary.files} profile(s), ${(summary.wallMs / 1000).toFixed(1)} s of wall time, ` +
      `${(summary.sampledMs / 1000).toFixed(1)} s sampled outside (idle). Shares are of that time; "on stack" ` +
      'counts every sample with the module anywhere on the stack.',
    '',
    ...(summary.categories.length > 0
      ? [
          '| work (a frame of it on the stack) | % of sampled time |',
          '|---|---|',
          ...summary.categories.map((c) => `| ${c.label} | ${pct(c.onStackPercent)} |`),
          '',
        ]
      : []),
    '| module | self % | on stack % |',
    '|---|---|---|',
    ...summary.modules
      .slice(0, modules)
      .map((m) => `| ${m.module} | ${pct(m.selfPercent)} | ${pct(m.onStackPercent)} |`),
    '',
    '| function | module | where | self % |',
    '|---|---|---|---|',
    ...summary.functions
      .slice(0, functions)
      .map((f) => `| ${f.name} | ${f.module} | ${f.location} | ${pct(f.selfPercent)} |`),
  ];
  return `${lines.join('\n')}\n`;
}
