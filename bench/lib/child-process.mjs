import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { registerCleanup } from './cleanup.mjs';
import { BenchProcessError, BenchTimeoutError, BenchUnavailableError } from './bench-errors.mjs';
import { systemUser } from './system-user.mjs';

const SETPRIV = '/usr/bin/setpriv';
/** Output kept per process, in characters; older output is dropped (smtp-sink's counter runs long). */
const MAX_OUTPUT_CHARS = 256 * 1024;
const TAIL_CHARS = 2000;

/**
 * @typedef {object} StartProcessOptions
 * @property {string} name short name for messages (`redis-server`, `worker 1`)
 * @property {NodeJS.ProcessEnv} [env] the whole environment (default: this process's)
 * @property {string} [cwd] working directory (default: this process's)
 * @property {boolean} [stdin] keep a pipe to the child's standard input open (default false: /dev/null)
 * @property {(chunk: string) => void} [onStdout] sees every chunk of standard output as it arrives
 * @property {boolean} [ownGroup] start the child as the leader of a new process group, so that
 *   `stop({ group: true })` also reaches the processes it starts (default false)
 * @property {string} [user] when this process is root, run the child as this user (with the user's
 *   group and no supplementary groups); ignored otherwise. Needs util-linux `setpriv`.
 */

/**
 * @typedef {object} ProcessHandle
 * @property {string} name
 * @property {number} pid
 * @property {() => string} output stdout and stderr so far (the last 256 KiB)
 * @property {() => boolean} running
 * @property {(pattern: RegExp, timeoutMs: number) => Promise<RegExpMatchArray>} waitForOutput
 * @property {(text: string) => void} write writes to standard input (only with `stdin: true`)
 * @property {() => void} endInput closes standard input
 * @property {(options?: { signal?: NodeJS.Signals, graceMs?: number, group?: boolean }) => Promise<void>} stop
 *   sends `signal` (default SIGTERM), waits up to `graceMs` (default 10000) and then SIGKILLs; `group` also
 *   signals the process group the child leads (daemons such as Postfix's master put their children there)
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 */

/**
 * Starts a process that the benchmark owns: it is stopped by {@link ProcessHandle.stop}, by the cleanup on
 * Ctrl-C, and by the kernel if this process dies without cleaning up (`setpriv --pdeathsig`, which execs
 * the command so the pid stays the command's own; setpriv sets the death signal after changing user, so
 * it holds for `user` too).
 * @param {string} command
 * @param {readonly string[]} args
 * @param {StartProcessOptions} options
 * @returns {ProcessHandle}
 */
export function startProcess(command, args, options) {
  const guarded = guardedCommand(command, args, options.user);
  const child = spawn(guarded.command, guarded.args, {
    env: options.env ?? process.env,
    cwd: options.cwd ?? process.cwd(),
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: options.ownGroup ?? false,
  });
  if (child.pid === undefined) throw new BenchProcessError(`could not start ${options.name} (${command})`);
  const pid = child.pid;
  let output = '';
  /** @type {Set<() => void>} */
  const listeners = new Set();
  /** @param {string} text */
  const append = (text) => {
    output += text;
    if (output.length > MAX_OUTPUT_CHARS) output = output.slice(-MAX_OUTPUT_CHARS / 2);
    for (const listener of listeners) listener();
  };
  child.on('error', (err) => append(`\n[bench] ${options.name}: ${err.message}\n`));
  child.stdout?.setEncoding('utf8').on('data', (/** @type {string} */ chunk) => {
    options.onStdout?.(chunk);
    append(chunk);
  });
  child.stderr?.setEncoding('utf8').on('data', append);
  // A child that exits early closes its end of the pipe; writing then must not crash the benchmark.
  child.stdin?.on('error', () => undefined);

  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} */
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      for (const listener of listeners) listener();
      resolve({ code, signal });
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null;

  /** @param {{ signal?: NodeJS.Signals, graceMs?: number, group?: boolean }} [stopOptions] */
  const stop = async ({ signal = 'SIGTERM', graceMs = 10_000, group = false } = {}) => {
    const signalAll = (/** @type {NodeJS.Signals} */ sig) => {
      if (running()) child.kill(sig);
      if (group) {
        try {
          process.kill(-pid, sig);
        } catch {
          // no process group left: everything in it has exited
        }
      }
    };
    signalAll(signal);
    /** @type {NodeJS.Timeout | undefined} */
    let timer;
    const late = await Promise.race([
      exited.then(() => false),
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (late)
      process.stderr.write(`${options.name} (pid ${pid}) ignored ${signal} for ${graceMs} ms: SIGKILL\n`);
    signalAll('SIGKILL');
    await exited;
    unregister();
  };
  const unregister = registerCleanup(`${options.name} (pid ${pid})`, () => stop({ graceMs: 5000 }));

  /** @type {ProcessHandle['waitForOutput']} */
  const waitForOutput = (pattern, timeoutMs) =>
    new Promise((resolve, reject) => {
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      const finish = (/** @type {() => void} */ settle) => {
        clearTimeout(timer);
        listeners.delete(check);
        settle();
      };
      const check = () => {
        const match = output.match(pattern);
        if (match) finish(() => resolve(match));
        else if (!running()) {
          finish(() =>
            reject(
              new BenchProcessError(
                `${options.name} (pid ${pid}) exited (${String(child.exitCode ?? child.signalCode)}) before printing ${String(pattern)}:\n${output.slice(-TAIL_CHARS)}`,
              ),
            ),
          );
        }
      };
      timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new BenchTimeoutError(
                `${options.name} to print ${String(pattern)}; output:\n${output.slice(-TAIL_CHARS)}`,
                timeoutMs,
              ),
            ),
          ),
        timeoutMs,
      );
      listeners.add(check);
      check();
    });

  return {
    name: options.name,
    pid,
    output: () => output,
    running,
    waitForOutput,
    write: (text) => {
      child.stdin?.write(text);
    },
    endInput: () => {
      child.stdin?.end();
    },
    stop,
    exited,
  };
}

/**
 * The command wrapped in `setpriv`: killed with this process, and run as `user` when this process is root.
 * @param {string} command
 * @param {readonly string[]} args
 * @param {string | undefined} user
 * @returns {{ command: string, args: string[] }}
 */
function guardedCommand(command, args, user) {
  const asUser = user !== undefined && process.getuid?.() === 0;
  if (!existsSync(SETPRIV)) {
    if (asUser) throw new BenchUnavailableError(`${SETPRIV} is needed to run ${command} as ${user}`);
    return { command, args: [...args] };
  }
  const ids = asUser ? systemUser(user) : undefined;
  if (asUser && !ids) throw new BenchUnavailableError(`no user ${user} in /etc/passwd`);
  const identity = ids ? [`--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--clear-groups'] : [];
  return { command: SETPRIV, args: [...identity, '--pdeathsig', 'SIGKILL', '--', command, ...args] };
}

/**
 * Throws when one of `processes` has exited: a system whose worker died must fail its run at once rather
 * than wait for the timeout.
 * @param {readonly ProcessHandle[]} processes
 */
export function assertRunning(processes) {
  for (const p of processes) {
    if (!p.running()) {
      throw new BenchProcessError(
        `${p.name} (pid ${p.pid}) exited during the run:\n${p.output().slice(-TAIL_CHARS)}`,
      );
    }
  }
}
