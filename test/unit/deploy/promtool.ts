import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's `promtool`, from the package `prometheus` (.ci/run installs it). */
export const PROMTOOL = '/usr/bin/promtool';

export interface PromtoolResult {
  readonly code: number;
  /** stdout and stderr together. */
  readonly output: string;
}

/** Runs `promtool ...args` (bounded to 60 s) and resolves with its exit code and output; never rejects on a non-zero exit. */
export function promtool(args: readonly string[], cwd?: string): Promise<PromtoolResult> {
  if (!existsSync(PROMTOOL)) {
    return Promise.reject(new Error(`${PROMTOOL} not found: apt-get install prometheus (see .ci/run)`));
  }
  return new Promise((resolve, reject) => {
    execFile(PROMTOOL, [...args], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && typeof err.code !== 'number')
        reject(new Error(`${PROMTOOL} did not run: ${err.message}`, { cause: err }));
      else resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}
