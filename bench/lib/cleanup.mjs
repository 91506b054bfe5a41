// One place that knows how to undo everything the benchmark started (processes, temporary directories),
// so that a failure, Ctrl-C or SIGTERM in the middle of a run leaves nothing behind.

/** @type {Map<number, { what: string, fn: () => Promise<void> | void }>} */
const pending = new Map();
let nextId = 1;
let installed = false;
let running = false;

/**
 * Registers an undo step; steps run newest first. Returns a function that drops the step once the owner
 * has undone it itself (the normal path).
 * @param {string} what shown if the step fails
 * @param {() => Promise<void> | void} fn
 * @returns {() => void}
 */
export function registerCleanup(what, fn) {
  const id = nextId++;
  pending.set(id, { what, fn });
  return () => {
    pending.delete(id);
  };
}

/** Runs every registered step once, newest first; a failing step is reported and the rest still run. */
export async function runCleanups() {
  const steps = [...pending.entries()].reverse();
  pending.clear();
  for (const [, step] of steps) {
    try {
      await step.fn();
    } catch (err) {
      process.stderr.write(
        `cleanup of ${step.what} failed: ${err instanceof Error ? err.message : String(err)}\n`,
      );
    }
  }
}

/**
 * On SIGINT/SIGTERM/SIGHUP: undo everything, then exit with 128 + signal number. A second signal while
 * cleaning up is ignored, so that a double Ctrl-C cannot leave half the processes running.
 */
export function installSignalCleanup() {
  if (installed) return;
  installed = true;
  /** @type {Record<string, number>} */
  const numbers = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
  for (const signal of Object.keys(numbers)) {
    process.on(signal, () => {
      if (running) return;
      running = true;
      process.stderr.write(`\n${signal}: stopping every process the benchmark started...\n`);
      void runCleanups().finally(() => process.exit(128 + (numbers[signal] ?? 0)));
    });
  }
}
