#!/usr/bin/env node
// A TCP proxy on 127.0.0.1 that makes loopback look like a link with a round-trip time: every chunk is
// delivered half the round trip after it arrived, in each direction, and a new connection reaches the
// server one round trip after the client connected (what a TCP handshake costs before the first byte).
// Bandwidth is not limited and nothing is lost. It runs in its own process so that its CPU is measured
// apart from the systems and the benchmark driver.
//   node bench/lib/latency-proxy-process.mjs TARGET_PORT RTT_MS
// Prints `listening PORT` once it accepts connections. On SIGTERM or SIGINT it prints
// `stats {"connections":N,"peakOpen":N,"peakInUse":N,"chunks":N,"bytes":N}` and exits. "In use" leaves out
// the connections whose client has sent QUIT (SMTP in plaintext): a sender that replaces a connection
// opens the new one while the old one is still saying goodbye.
const QUIT = /(?:^|\r\n)QUIT\r\n$/i;
import { connect, createServer } from 'node:net';

const targetPort = Number(process.argv[2]);
const rttMs = Number(process.argv[3]);
if (!Number.isInteger(targetPort) || targetPort <= 0 || !Number.isFinite(rttMs) || rttMs < 0) {
  process.stderr.write('usage: latency-proxy-process.mjs TARGET_PORT RTT_MS\n');
  process.exit(2);
}
const oneWayMs = rttMs / 2;
const stats = { connections: 0, peakOpen: 0, peakInUse: 0, chunks: 0, bytes: 0 };
let open = 0;
let quitting = 0;

/**
 * Runs `action` half a round trip from now. Node fires timers of equal duration in the order they were
 * set, so chunks keep their order.
 * @param {() => void} action
 */
const later = (action) => {
  setTimeout(action, oneWayMs);
};

const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  stats.connections += 1;
  open += 1;
  stats.peakOpen = Math.max(stats.peakOpen, open);
  stats.peakInUse = Math.max(stats.peakInUse, open - quitting);
  let quit = false;
  client.on('data', (/** @type {Buffer} */ chunk) => {
    if (quit || !QUIT.test(chunk.toString('latin1', Math.max(0, chunk.length - 8)))) return;
    quit = true;
    quitting += 1;
  });
  client.once('close', () => {
    open -= 1;
    if (quit) quitting -= 1;
  });
  /** @type {import('node:net').Socket | undefined} */
  let upstream;
  client.on('error', () => upstream?.destroy());
  client.pause();
  setTimeout(() => {
    if (client.destroyed) return;
    upstream = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true, noDelay: true });
    upstream.on('error', () => client.destroy());
    pipeDelayed(client, upstream);
    pipeDelayed(upstream, client);
    client.resume();
  }, rttMs);
});

/**
 * Forwards `from` to `to`, each chunk and the end of the stream half a round trip late. A closed leg
 * takes the other one down at the same delay.
 * @param {import('node:net').Socket} from
 * @param {import('node:net').Socket} to
 */
function pipeDelayed(from, to) {
  from.on('data', (/** @type {Buffer} */ chunk) => {
    stats.chunks += 1;
    stats.bytes += chunk.length;
    later(() => {
      if (!to.destroyed) to.write(chunk);
    });
  });
  from.on('end', () => later(() => to.end()));
  from.on('close', (hadError) => later(() => (hadError ? to.destroy() : to.end())));
}

server.on('error', (err) => {
  process.stderr.write(`latency proxy: ${err.message}\n`);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`, () => process.exit(0));
  });
}
