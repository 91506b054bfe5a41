import { connect } from 'node:net';

/** A probe that gets no answer in this time counts as "not yet listening". */
const PROBE_TIMEOUT_MS = 2000;

/**
 * Whether something accepts TCP connections on 127.0.0.1:`port` (the probe connection is closed at once).
 * @param {number} port
 * @returns {Promise<boolean>}
 */
export function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: PROBE_TIMEOUT_MS });
    const done = (/** @type {boolean} */ ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
