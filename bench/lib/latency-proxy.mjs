import { fileURLToPath } from 'node:url';
import { startProcess } from './child-process.mjs';

const SCRIPT = fileURLToPath(new URL('./latency-proxy-process.mjs', import.meta.url));

/**
 * What the proxy saw during its life.
 * @typedef {object} LatencyProxyStats
 * @property {number} rttMs the round trip it added
 * @property {number} connections connections accepted
 * @property {number} peakOpen most connections open at the same time
 * @property {number} peakInUse most connections open at the same time whose client had not sent QUIT
 * @property {number} chunks chunks forwarded, both directions
 * @property {number} bytes bytes forwarded, both directions
 */

/**
 * @typedef {object} LatencyProxy
 * @property {number} port where the systems connect instead of the sink
 * @property {number} pid
 * @property {() => Promise<LatencyProxyStats>} stop stops the proxy and returns what it saw
 */

/**
 * Starts the latency proxy (bench/lib/latency-proxy-process.mjs) in front of the sink on 127.0.0.1.
 * @param {{ targetPort: number, rttMs: number, startTimeoutMs?: number }} options `startTimeoutMs`
 *   default 10000
 * @returns {Promise<LatencyProxy>}
 */
export async function startLatencyProxy({ targetPort, rttMs, startTimeoutMs = 10_000 }) {
  const proxy = startProcess(process.execPath, [SCRIPT, String(targetPort), String(rttMs)], {
    name: 'latency proxy',
  });
  let port;
  try {
    const [, listening] = await proxy.waitForOutput(/^listening (\d+)$/m, startTimeoutMs);
    port = Number(listening);
  } catch (err) {
    await proxy.stop({ graceMs: 2000 });
    throw err;
  }
  return {
    port,
    pid: proxy.pid,
    async stop() {
      await proxy.stop({ graceMs: 5000 });
      const line = proxy.output().match(/^stats (\{.*\})$/m)?.[1];
      const seen = line ? /** @type {Omit<LatencyProxyStats, 'rttMs'>} */ (JSON.parse(line)) : undefined;
      return {
        rttMs,
        connections: seen?.connections ?? NaN,
        peakOpen: seen?.peakOpen ?? NaN,
        peakInUse: seen?.peakInUse ?? NaN,
        chunks: seen?.chunks ?? NaN,
        bytes: seen?.bytes ?? NaN,
      };
    },
  };
}
