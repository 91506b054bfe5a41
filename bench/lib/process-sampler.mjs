import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of the times in /proc/<pid>/stat (USER_HZ; 100 on Linux unless told otherwise). */
const TICKS_PER_SECOND = readConf('CLK_TCK', 100);
/** Bytes per page, the unit of /proc/<pid>/statm. */
const PAGE_BYTES = readConf('PAGESIZE', 4096);
const MIB = 2 ** 20;
/** How often the processes are read: processes that end between two reads lose at most this much CPU. */
const DEFAULT_INTERVAL_MS = 250;

/**
 * A process whose CPU and memory are measured. With `tree`, the process and all its descendants are added up,
 * including descendants that have already exited and been reaped (their time is in their parent's
 * cutime/cstime), so a process-per-role daemon such as Postfix's master is measured whole.
 * @typedef {object} ProcessTarget
 * @property {string} name
 * @property {number} pid
 * @property {boolean} [tree]
 * @property {boolean} [memory] measure the resident memory of the process itself, never of its children
 *   (default true; false where it says nothing, as for a daemon whose work is done in its children)
 */

/**
 * @typedef {object} ProcessFigure
 * @property {string} name
 * @property {number} pid
 * @property {number} percent CPU over the window, in % of one core (200 % = both cores of a 2-core box)
 * @property {MemoryFigure | null} rss resident memory of the process itself; null with `memory: false`
 * @property {Record<string, number>} [byCommand] for trees: % of one core per command name, approximate
 *   (a process that lived less than one sampling interval is missed here, though counted in `percent`)
 */

/**
 * @typedef {object} MemoryFigure
 * @property {number} startMiB at the start of the window
 * @property {number} endMiB at its end (the last reading while the process was alive)
 * @property {number} peakMiB the largest reading (sampled, so a short peak between readings is missed)
 */

/**
 * @typedef {object} BoxFigure
 * @property {number} cores
 * @property {number} busyPercent CPU of the whole machine in use, in % of all cores (100 = all busy)
 * @property {number} userPercent
 * @property {number} systemPercent kernel time on behalf of processes (system calls)
 * @property {number} irqPercent kernel time in interrupts and soft interrupts (loopback TCP is processed there)
 * @property {number} iowaitPercent
 * @property {number} stealPercent time the hypervisor gave to other guests
 * @property {number} othersPercent busy CPU not charged to the measured processes, in % of one core: the
 *   load other people put on the machine during the run, plus kernel work charged to no process
 *   (interrupt time, depending on the kernel's accounting)
 */

/**
 * @typedef {object} SamplerReport
 * @property {number} seconds length of the window
 * @property {ProcessFigure[]} processes
 * @property {BoxFigure} box
 */

/**
 * Samples the CPU time of `targets` from /proc/<pid>/stat (utime + stime, plus cutime + cstime of reaped
 * children), their resident memory from /proc/<pid>/statm, and the CPU of the whole machine from
 * /proc/stat, from now until `stop()`.
 * @param {readonly ProcessTarget[]} targets
 * @param {{ intervalMs?: number }} [options] `intervalMs` default 250
 * @returns {{ stop: () => SamplerReport }}
 */
export function startProcessSampler(targets, { intervalMs = DEFAULT_INTERVAL_MS } = {}) {
  const startedAt = performance.now();
  const boxStart = readBoxTicks();
  /** @type {Map<string, { first: number, last: number, commands: Map<number, { comm: string, first: number, last: number }> }>} */
  const state = new Map();
  /** @type {Map<string, { start: number, end: number, peak: number }>} resident bytes */
  const memory = new Map();
  /** @param {ProcessTarget} target */
  const noteMemory = ({ name, pid, memory: wanted = true }) => {
    const bytes = wanted ? readRssBytes(pid) : undefined;
    if (bytes === undefined) return;
    const seen = memory.get(name);
    if (seen) {
      seen.end = bytes;
      seen.peak = Math.max(seen.peak, bytes);
    } else memory.set(name, { start: bytes, end: bytes, peak: bytes });
  };
  let firstSample = true;
  const sample = () => {
    const needTree = targets.some((t) => t.tree);
    const table = needTree ? readProcessTable() : undefined;
    for (const target of targets) {
      let entry = state.get(target.name);
      if (target.tree && table) {
        const pids = descendants(table, target.pid);
        if (pids.length === 0) continue; // gone: keep the last reading
        let total = 0;
        for (const pid of pids) {
          const stat = /** @type {ProcStat} */ (table.get(pid));
          total += stat.ticks + stat.childTicks;
        }
        entry ??= { first: total, last: total, commands: new Map() };
        entry.last = total;
        noteMemory(target);
        for (const pid of pids) {
          const stat = /** @type {ProcStat} */ (table.get(pid));
          const seen = entry.commands.get(pid);
          // A process first seen after the window opened started inside it: all its time counts.
          if (seen) seen.last = stat.ticks;
          else
            entry.commands.set(pid, {
              comm: stat.comm,
              first: firstSample ? stat.ticks : 0,
              last: stat.ticks,
            });
        }
      } else {
        const stat = readProcStat(target.pid);
        if (!stat) continue;
        const total = stat.ticks + stat.childTicks;
        entry ??= { first: total, last: total, commands: new Map() };
        entry.last = total;
        noteMemory(target);
      }
      state.set(target.name, entry);
    }
    firstSample = false;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      sample();
      const seconds = (performance.now() - startedAt) / 1000;
      const toPercent = (/** @type {number} */ ticks) => (ticks / TICKS_PER_SECOND / seconds) * 100;
      /** @type {ProcessFigure[]} */
      const processes = targets.map((target) => {
        const entry = state.get(target.name);
        const seen = memory.get(target.name);
        const rss = seen
          ? { startMiB: seen.start / MIB, endMiB: seen.end / MIB, peakMiB: seen.peak / MIB }
          : null;
        if (!entry) return { name: target.name, pid: target.pid, percent: NaN, rss };
        /** @type {ProcessFigure} */
        const figure = {
          name: target.name,
          pid: target.pid,
          percent: toPercent(entry.last - entry.first),
          rss,
        };
        if (target.tree) {
          /** @type {Record<string, number>} */
          const byCommand = {};
          for (const { comm, first, last } of entry.commands.values()) {
            byCommand[comm] = (byCommand[comm] ?? 0) + toPercent(last - first);
          }
          figure.byCommand = byCommand;
        }
        return figure;
      });
      const boxEnd = readBoxTicks();
      const d = (/** @type {keyof BoxTicks} */ key) => boxEnd[key] - boxStart[key];
      const total = d('total') || 1;
      const share = (/** @type {number} */ ticks) => (ticks / total) * 100;
      const cores = boxEnd.cores;
      const busyCoreTicks = d('total') - d('idle') - d('iowait');
      const ours = processes.reduce((sum, p) => sum + (Number.isFinite(p.percent) ? p.percent : 0), 0);
      return {
        seconds,
        processes,
        box: {
          cores,
          busyPercent: share(busyCoreTicks),
          userPercent: share(d('user')),
          systemPercent: share(d('system')),
          irqPercent: share(d('irq')),
          iowaitPercent: share(d('iowait')),
          stealPercent: share(d('steal')),
          othersPercent: Math.max(0, share(busyCoreTicks) * cores - ours),
        },
      };
    },
  };
}

/**
 * @typedef {object} ProcStat
 * @property {number} pid
 * @property {number} ppid
 * @property {string} comm
 * @property {number} ticks utime + stime
 * @property {number} childTicks cutime + cstime (reaped children)
 */

/**
 * @param {number} pid
 * @returns {ProcStat | undefined} undefined when the process is gone
 */
export function readProcStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 of proc(5): field k is fields[k - 3].
  const num = (/** @type {number} */ k) => Number(fields[k - 3]);
  return {
    pid,
    ppid: num(4),
    comm: text.slice(open + 1, close),
    ticks: num(14) + num(15),
    childTicks: num(16) + num(17),
  };
}

/**
 * @param {number} pid
 * @returns {number | undefined} resident bytes, or undefined when the process is gone
 */
function readRssBytes(pid) {
  try {
    const [, resident] = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
    return Number(resident) * PAGE_BYTES;
  } catch {
    return undefined;
  }
}

/** @returns {Map<number, ProcStat>} every process on the machine */
function readProcessTable() {
  /** @type {Map<number, ProcStat>} */
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readProcStat(pid);
    if (stat) table.set(pid, stat);
  }
  return table;
}

/**
 * @param {Map<number, ProcStat>} table
 * @param {number} root
 * @returns {number[]} root and all its descendants that are alive (empty when root is gone)
 */
function descendants(table, root) {
  if (!table.has(root)) return [];
  /** @type {Map<number, number[]>} */
  const children = new Map();
  for (const stat of table.values()) {
    const list = children.get(stat.ppid);
    if (list) list.push(stat.pid);
    else children.set(stat.ppid, [stat.pid]);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const child of children.get(/** @type {number} */ (out[i])) ?? []) out.push(child);
  }
  return out;
}

/**
 * @typedef {object} BoxTicks
 * @property {number} user
 * @property {number} system
 * @property {number} irq
 * @property {number} idle
 * @property {number} iowait
 * @property {number} steal
 * @property {number} total
 * @property {number} cores
 */

/** @returns {BoxTicks} the machine's CPU counters since boot, all cores added up */
function readBoxTicks() {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const [, ...values] = /** @type {string} */ (lines[0]).trim().split(/\s+/);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    values.map(Number);
  return {
    user: user + nice,
    system,
    irq: irq + softirq,
    idle,
    iowait,
    steal,
    total: user + nice + system + idle + iowait + irq + softirq + steal,
    cores: lines.filter((l) => /^cpu\d+ /.test(l)).length,
  };
}

/**
 * A number from `getconf`, or `fallback` when it cannot be read.
 * @param {string} name
 * @param {number} fallback
 * @returns {number}
 */
function readConf(name, fallback) {
  try {
    const value = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : fallback;
  } catch {
    return fallback;
  }
}
