import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Directories searched after PATH: Postfix installs its tools in /usr/sbin, which non-root PATHs often lack. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/**
 * The absolute path of an executable found in PATH (then in the sbin directories), or undefined.
 * @param {string} name
 * @returns {string | undefined}
 */
export function findExecutable(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
