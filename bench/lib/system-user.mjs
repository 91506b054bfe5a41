import { readFileSync } from 'node:fs';

/**
 * The uid and gid of a local user, from /etc/passwd.
 * @param {string} name
 * @returns {{ uid: number, gid: number } | undefined} undefined when there is no such user
 */
export function systemUser(name) {
  let passwd;
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
