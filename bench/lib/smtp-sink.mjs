import { fileURLToPath } from 'node:url';
import { startProcess } from './child-process.mjs';
import { freePort } from './free-port.mjs';
import { findExecutable } from './find-executable.mjs';
import { waitUntil } from './wait-until.mjs';
import { BenchProcessError, BenchUnavailableError } from './bench-errors.mjs';
import { canConnect } from './can-connect.mjs';

const NODE_SINK_SCRIPT = fileURLToPath(new URL('./node-sink-process.mjs', import.meta.url));
/** Attempts at binding a fresh port: another process may take the free port between probe and bind. */
const BIND_ATTEMPTS = 3;

/**
 * Which sink receives the mail: Postfix's `smtp-sink` (a single C process, the reference sink), or the
 * Node fallback (bench/lib/node-sink-process.mjs) for machines without Postfix; `auto` picks smtp-sink
 * when it is installed.
 * @typedef {'auto' | 'smtp-sink' | 'node'} SinkKind
 */

/**
 * @typedef {object} BenchSink
 * @property {'smtp-sink' | 'node'} kind
 * @property {number} port
 * @property {number} pid
 * @property {() => number} count messages received so far (each completed DATA, i.e. each final ".")
 * @property {() => Promise<void>} stop
 */

/** @returns {string | undefined} the smtp-sink binary, if installed */
export function smtpSinkBinary() {
  return findExecutable('smtp-sink');
}

/**
 * Starts a sink on a free 127.0.0.1 port and follows its message counter.
 *
 * Counting: `smtp-sink -c` prints `sess=S quit=Q mesg=M` followed by a carriage return every time a
 * session ends, QUIT arrives or a message's final "." is received; `mesg` is the number of messages
 * received so far. The Node fallback prints the same `mesg=M\r` records. The counter is read from the
 * sink's standard output as it arrives, so counting costs the sink no disk work (unlike `-d`/`-D` dumps).
 * @param {{ kind: SinkKind, startTimeoutMs?: number }} options `startTimeoutMs` default 10000
 * @returns {Promise<BenchSink>}
 */
export async function startSink({ kind, startTimeoutMs = 10_000 }) {
  const binary = smtpSinkBinary();
  if (kind === 'smtp-sink' && !binary) {
    throw new BenchUnavailableError(
      'smtp-sink is not installed (Debian: DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)',
    );
  }
  const chosen = kind === 'node' || !binary ? 'node' : 'smtp-sink';
  let lastError;
  for (let attempt = 1; attempt <= BIND_ATTEMPTS; attempt++) {
    const port = await freePort();
    let received = 0;
    let carry = '';
    /** @param {string} chunk */
    const onStdout = (chunk) => {
      const text = carry + chunk;
      const end = text.lastIndexOf('\r');
      if (end < 0) {
        carry = text;
        return;
      }
      carry = text.slice(end + 1);
      const complete = text.slice(0, end);
      const at = complete.lastIndexOf('mesg=');
      if (at >= 0) received = Number.parseInt(complete.slice(at + 5), 10);
    };
    // 1000 is the listen backlog: bursts of new connections (smtp-source, Postfix) are never refused.
    // smtp-sink refuses to run as root; it runs as nobody from the start (not with its own -u, which
    // would drop the parent-death signal set for it when it changes user).
    const sink =
      chosen === 'smtp-sink'
        ? startProcess(/** @type {string} */ (binary), ['-c', `127.0.0.1:${port}`, '1000'], {
            name: chosen,
            onStdout,
            user: 'nobody',
          })
        : startProcess(process.execPath, [NODE_SINK_SCRIPT, String(port)], { name: chosen, onStdout });
    try {
      await waitUntil(
        async () => {
          if (!sink.running()) throw new BenchProcessError(`${chosen} exited at start: ${sink.output()}`);
          return canConnect(port);
        },
        { timeoutMs: startTimeoutMs, intervalMs: 25, what: `${chosen} to listen on port ${port}` },
      );
      return {
        kind: chosen,
        port,
        pid: sink.pid,
        count: () => received,
        stop: () => sink.stop({ graceMs: 5000 }),
      };
    } catch (err) {
      lastError = err;
      await sink.stop({ graceMs: 2000 });
    }
  }
  throw lastError;
}
