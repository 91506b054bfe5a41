import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/** A child process started by a test (a worker, a CLI, an API server). */
export interface ChildProcessHandle {
  readonly pid: number;
  /** Everything the child wrote to stdout and stderr so far, interleaved in arrival order. */
  readonly output: () => string;
  /**
   * Resolves with the first match of `pattern` in the output (a `g` flag is ignored), waiting for more
   * output if needed. Rejects when `timeoutMs` (default 10000) passes or the child exits without a match;
   * both errors carry the output tail.
   */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` (default `SIGTERM`) unless the child has already exited. */
  kill(signal?: NodeJS.Signals): void;
  /** Settles once the child has exited and its output has been read to the end. Never rejects. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options of {@link spawnNode}. */
export interface SpawnNodeOptions {
  /** The child's whole environment. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Working directory. Default: this process's. */
  cwd?: string;
}

/** The child did not print what was awaited in time, or exited first. */
export class ChildOutputError extends Error {
  override readonly name = 'ChildOutputError';
  constructor(
    readonly code: 'ERR_CHILD_OUTPUT_TIMEOUT' | 'ERR_CHILD_EXITED',
    message: string,
  ) {
    super(message);
  }
}

const SETPRIV = '/usr/bin/setpriv';
const CAN_SET_PARENT_DEATH_SIGNAL = process.platform === 'linux' && existsSync(SETPRIV);

/**
 * Wraps a command so that the kernel SIGKILLs it when this process dies, whatever the way (the 'exit' hooks
 * below do not run when the test process is itself SIGKILLed or dies of a signal). Uses util-linux
 * `setpriv --pdeathsig`, which execs the command, so the pid stays the command's own. The signal follows the
 * thread that spawned the child: spawn from the main thread. Without `setpriv`, the command runs as is.
 */
export function orphanSafeCommand(
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  return CAN_SET_PARENT_DEATH_SIGNAL
    ? { command: SETPRIV, args: ['--pdeathsig', 'SIGKILL', '--', command, ...args] }
    : { command, args: [...args] };
}

/** Beyond this, the oldest output is dropped (a chatty worker in a minutes-long fault test). */
const MAX_OUTPUT_CHARS = 16 * 1024 * 1024;
const OUTPUT_TAIL_CHARS = 4000;
/** After the exit, how long the output pipes may stay open (a grandchild holding them) before we close them. */
const PIPE_DRAIN_MS = 2000;
const DEFAULT_OUTPUT_TIMEOUT_MS = 10_000;

const liveChildren = new Set<ChildProcess>();
const childExits = new Map<ChildProcess, Promise<unknown>>();

process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function tail(text: string): string {
  return text.length > OUTPUT_TAIL_CHARS ? `...${text.slice(-OUTPUT_TAIL_CHARS)}` : text;
}

/**
 * Starts `node script ...args` with stdout and stderr captured. The child is SIGKILLed if this process
 * exits first (see {@link killAllChildren} to end them explicitly).
 */
export function spawnNode(
  script: string,
  args: readonly string[] = [],
  options: SpawnNodeOptions = {},
): ChildProcessHandle {
  const guarded = orphanSafeCommand(process.execPath, [script, ...args]);
  const child = spawn(guarded.command, guarded.args, {
    env: options.env ?? process.env,
    cwd: options.cwd ?? process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const append = (text: string): void => {
    output += text;
    if (output.length > MAX_OUTPUT_CHARS) output = output.slice(-MAX_OUTPUT_CHARS / 2);
    for (const listener of listeners) listener();
  };
  child.on('error', (err) => append(`\n[harness] child process error: ${err.message}\n`));
  if (child.pid === undefined) {
    throw new Error(`could not spawn ${process.execPath} ${script}`);
  }
  const pid = child.pid;
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', append);
  liveChildren.add(child);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      const result = { code, signal };
      const timer = setTimeout(() => {
        // A grandchild inherited the pipes; stop reading them rather than wait for it.
        child.stdout?.destroy();
        child.stderr?.destroy();
        done();
      }, PIPE_DRAIN_MS);
      const done = (): void => {
        clearTimeout(timer);
        resolve(result);
      };
      // Node emits 'close' after 'exit', once the output pipes are read to their end.
      child.once('close', done);
    });
  });
  childExits.set(child, exited);
  void exited.then(() => childExits.delete(child));

  const waitForOutput = (
    pattern: RegExp,
    timeoutMs = DEFAULT_OUTPUT_TIMEOUT_MS,
  ): Promise<RegExpMatchArray> => {
    const matcher = new RegExp(pattern.source, pattern.flags.replace('g', ''));
    const found = output.match(matcher);
    if (found) return Promise.resolve(found);
    return new Promise<RegExpMatchArray>((resolve, reject) => {
      let settled = false;
      const finish = (settle: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        listeners.delete(check);
        settle();
      };
      const check = (): void => {
        const match = output.match(matcher);
        if (match) finish(() => resolve(match));
      };
      const timer = setTimeout(() => {
        finish(() =>
          reject(
            new ChildOutputError(
              'ERR_CHILD_OUTPUT_TIMEOUT',
              `pid ${pid} printed nothing matching ${String(pattern)} within ${timeoutMs}ms; output:\n${tail(output)}`,
            ),
          ),
        );
      }, timeoutMs);
      listeners.add(check);
      void exited.then(({ code, signal }) => {
        check();
        finish(() =>
          reject(
            new ChildOutputError(
              'ERR_CHILD_EXITED',
              `pid ${pid} exited (code ${code}, signal ${signal}) without printing ${String(pattern)}; output:\n${tail(output)}`,
            ),
          ),
        );
      });
    });
  };

  return {
    pid,
    output: () => output,
    waitForOutput,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (isRunning(child)) child.kill(signal);
    },
    exited,
  };
}

/** SIGKILLs every child started by {@link spawnNode} that is still running and waits for their exits. */
export async function killAllChildren(): Promise<void> {
  const pending = [...childExits.entries()];
  for (const [child] of pending) {
    if (isRunning(child)) child.kill('SIGKILL');
  }
  await Promise.all(pending.map(([, exit]) => exit));
}
