import { connect, createServer, type Socket } from 'node:net';

/**
 * What the proxy does to a connection.
 *
 * - `pass`: forwards both ways untouched.
 * - `latency`: delays every chunk, each way, by `ms` milliseconds (a one-way delay, so a round trip costs 2 × ms).
 * - `resetAfterClientBytes`: forwards until the client has sent `bytes` bytes in total, forwards those, then
 *   resets (RST) both the client and the server connection.
 * - `blackhole`: accepts the client, never connects upstream, never answers (greeting timeouts).
 * - `closeBeforeGreeting`: accepts, then closes at once (the client sees a FIN before any greeting).
 * - `swallowReplyAfterDot`: forwards everything, including the `<CRLF>.<CRLF>` ending DATA, so the server
 *   stores the message; when the server's reply to it arrives, drops the reply and closes the client
 *   connection: the client cannot know whether the message was accepted (RFC 1047). Plaintext sessions
 *   only: once STARTTLS is accepted the session is encrypted and merely forwarded (see {@link SmtpDialogue}).
 * - `refuse`: resets every new connection at once, as if nothing listened (the client sees ECONNRESET, not
 *   ECONNREFUSED: the port stays bound so that nobody else can take it).
 */
export type FaultMode =
  | { kind: 'pass' }
  | { kind: 'latency'; ms: number }
  | { kind: 'resetAfterClientBytes'; bytes: number }
  | { kind: 'blackhole' }
  | { kind: 'closeBeforeGreeting' }
  | { kind: 'swallowReplyAfterDot' }
  | { kind: 'refuse' };

/** What the proxy has done so far. */
export interface FaultProxyStats {
  /** Client connections accepted, in any mode. */
  readonly connections: number;
  /** Replies to the end of DATA dropped in `swallowReplyAfterDot` mode. */
  readonly swallowedReplies: number;
  /** Connection pairs reset in `resetAfterClientBytes` mode. */
  readonly resets: number;
}

/** A TCP proxy on 127.0.0.1 in front of an SMTP server, with switchable faults. */
export interface FaultProxy {
  readonly port: number;
  readonly host: string;
  /**
   * Sets the mode of the connections accepted from now on. `swallowReplyAfterDot` also applies to the
   * connections already open: a reply to the end of DATA is swallowed whenever the mode at the moment it
   * arrives is `swallowReplyAfterDot` (so a pooled connection opened earlier is affected too).
   */
  setMode(mode: FaultMode): void;
  /** A snapshot of the counters. */
  readonly stats: FaultProxyStats;
  /** Stops listening and destroys every socket. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Upstream host. Default `127.0.0.1`. */
  targetHost?: string;
  /** Upstream port (the SMTP server). */
  targetPort: number;
  /** Initial mode. Default `{ kind: 'pass' }`. */
  mode?: FaultMode;
}

/** The command whose reply an SMTP reply is, in order (RFC 5321 §4.2; PIPELINING keeps the order). */
type Awaiting = 'greeting' | 'data' | 'starttls' | 'dot' | 'other';

const END_OF_DATA = '\r\n.\r\n';
/** Enough of a command line to read its verb; the rest of a long line (AUTH data) is not kept. */
const COMMAND_HEAD_CHARS = 32;

/**
 * Follows a plaintext SMTP dialogue from both ends to find the server's reply to the end of DATA.
 *
 * Every client line in command mode gets exactly one reply (AUTH continuation lines included), so a queue
 * of what each reply answers is enough, also with PIPELINING. DATA mode starts when the server answers 354
 * to DATA (a client must wait for it before sending the content, RFC 2920 §3.1) and ends at `<CRLF>.<CRLF>`,
 * which may be split across chunks. After STARTTLS is accepted the session is encrypted and can no longer
 * be followed, nor can BDAT (CHUNKING) content: such sessions are then only forwarded, never swallowed.
 * LMTP's one-reply-per-recipient after the dot is not handled.
 */
export class SmtpDialogue {
  #awaiting: Awaiting[] = ['greeting'];
  #clientInData = false;
  #clientLineHead = '';
  /** The last characters of the content seen so far (latin1), to find a terminator split across chunks. */
  #dataTail = '';
  #serverLine = '';
  #atReplyStart = true;
  #opaque = false;

  /** Whether the session can no longer be followed (encrypted, or BDAT). */
  get opaque(): boolean {
    return this.#opaque;
  }

  /** Feeds bytes the client sent to the server. */
  onClientBytes(chunk: Buffer): void {
    let text = chunk.toString('latin1');
    while (text.length > 0 && !this.#opaque) {
      if (this.#clientInData) {
        const scan = this.#dataTail + text;
        const end = scan.indexOf(END_OF_DATA);
        if (end < 0) {
          this.#dataTail = scan.slice(-(END_OF_DATA.length - 1));
          return;
        }
        this.#clientInData = false;
        this.#awaiting.push('dot');
        text = scan.slice(end + END_OF_DATA.length);
        continue;
      }
      const newline = text.indexOf('\n');
      if (newline < 0) {
        this.#clientLineHead = (this.#clientLineHead + text).slice(0, COMMAND_HEAD_CHARS);
        return;
      }
      const line = (this.#clientLineHead + text.slice(0, newline)).replace(/\r$/, '');
      this.#clientLineHead = '';
      text = text.slice(newline + 1);
      const verb = line.split(' ', 1)[0]?.toUpperCase() ?? '';
      if (verb === 'BDAT') {
        this.#opaque = true;
        return;
      }
      this.#awaiting.push(verb === 'DATA' ? 'data' : verb === 'STARTTLS' ? 'starttls' : 'other');
    }
  }

  /**
   * Feeds bytes the server sent to the client. With `swallow`, stops at the first byte of the reply to the
   * end of DATA: `forward` is what precedes it and `swallowed` is true (the rest is to be dropped).
   */
  onServerBytes(chunk: Buffer, swallow: boolean): { forward: Buffer; swallowed: boolean } {
    let at = 0;
    while (at < chunk.length && !this.#opaque) {
      if (this.#atReplyStart) {
        if (swallow && this.#awaiting[0] === 'dot') {
          return { forward: chunk.subarray(0, at), swallowed: true };
        }
        this.#atReplyStart = false;
      }
      const newline = chunk.indexOf(0x0a, at);
      if (newline < 0) {
        this.#serverLine = (this.#serverLine + chunk.toString('latin1', at)).slice(0, COMMAND_HEAD_CHARS);
        break;
      }
      const line = (this.#serverLine + chunk.toString('latin1', at, newline)).replace(/\r$/, '');
      this.#serverLine = '';
      at = newline + 1;
      // `250-...` continues a multi-line reply; `250 ...` or a bare `250` ends it.
      if (/^\d{3}-/.test(line)) continue;
      this.#atReplyStart = true;
      this.#onReply(Number(line.slice(0, 3)));
    }
    return { forward: chunk, swallowed: false };
  }

  #onReply(code: number): void {
    // An unsolicited reply (421 before closing) answers nothing that is queued.
    const answered = this.#awaiting.length > 0 ? this.#awaiting.shift() : undefined;
    if (answered === 'data' && code === 354) {
      this.#clientInData = true;
      // The CRLF ending the DATA command line also starts the content: `.<CRLF>` right away is an empty message.
      this.#dataTail = '\r\n';
    } else if (answered === 'starttls' && code >= 200 && code < 300) {
      this.#opaque = true;
    }
  }
}

/** Runs actions at once, or `delayMs` later in the order they were asked (timers of equal delay fire in order). */
class Scheduler {
  constructor(
    private readonly delayMs: number,
    private readonly timers: Set<NodeJS.Timeout>,
  ) {}

  run(action: () => void): void {
    if (this.delayMs <= 0) return action();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, this.delayMs);
    this.timers.add(timer);
  }
}

/**
 * Starts a proxy on 127.0.0.1 and a free port that forwards to `targetHost:targetPort` and injects the
 * current {@link FaultMode} into the connections it accepts.
 */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const host = '127.0.0.1';
  const targetHost = options.targetHost ?? '127.0.0.1';
  const { targetPort } = options;
  let mode: FaultMode = options.mode ?? { kind: 'pass' };
  const stats = { connections: 0, swallowedReplies: 0, resets: 0 };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closing: Promise<void> | undefined;

  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Errors (resets, refused upstream) end the pair below; without a listener they would crash the process.
    socket.on('error', () => undefined);
  };

  const relay = (client: Socket, connectionMode: FaultMode): void => {
    // Half-open connections are allowed on both legs so that each FIN is relayed in its turn (after the
    // data still delayed) instead of Node ending our side on its own.
    const upstream = connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    track(upstream);
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    const delayMs = connectionMode.kind === 'latency' ? Math.max(connectionMode.ms, 0) : 0;
    const toServer = new Scheduler(delayMs, timers);
    const toClient = new Scheduler(delayMs, timers);
    const resetAfter = connectionMode.kind === 'resetAfterClientBytes' ? connectionMode.bytes : Infinity;
    const dialogue = new SmtpDialogue();
    let clientBytes = 0;
    let done = false;

    const destroyBoth = (): void => {
      done = true;
      client.destroy();
      upstream.destroy();
    };
    const forward = (from: Socket, to: Socket, scheduler: Scheduler, data: Buffer): void => {
      scheduler.run(() => {
        if (to.destroyed) return;
        // Backpressure only without delay: delayed chunks are already in flight, as on a slow link.
        if (!to.write(data) && delayMs === 0) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
    };

    client.on('data', (chunk: Buffer) => {
      if (done) return;
      if (clientBytes + chunk.length >= resetAfter) {
        const head = chunk.subarray(0, Math.max(resetAfter - clientBytes, 0));
        clientBytes += head.length;
        done = true;
        toServer.run(() => {
          const reset = (): void => {
            stats.resets += 1;
            client.resetAndDestroy();
            upstream.resetAndDestroy();
          };
          // Let the server read the bytes before the reset, which would discard what it has not read yet.
          if (head.length > 0 && !upstream.destroyed) upstream.write(head, reset);
          else reset();
        });
        return;
      }
      clientBytes += chunk.length;
      dialogue.onClientBytes(chunk);
      forward(client, upstream, toServer, chunk);
    });

    upstream.on('data', (chunk: Buffer) => {
      if (done) return;
      const { forward: passed, swallowed } = dialogue.onServerBytes(
        chunk,
        mode.kind === 'swallowReplyAfterDot',
      );
      if (passed.length > 0) forward(upstream, client, toClient, passed);
      if (swallowed) {
        done = true;
        stats.swallowedReplies += 1;
        // The server has stored the message; the client only ever sees the connection end (after what
        // preceded the reply, hence destroySoon rather than destroy).
        toClient.run(() => {
          client.destroySoon();
          upstream.destroy();
        });
      }
    });

    client.on('end', () => toServer.run(() => upstream.end()));
    upstream.on('end', () => toClient.run(() => client.end()));
    // A leg that fails takes the other with it at once; one that closes cleanly half-closes the other.
    client.once('close', (hadError) => (hadError ? destroyBoth() : toServer.run(() => upstream.end())));
    upstream.once('close', (hadError) => (hadError ? destroyBoth() : toClient.run(() => client.end())));
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    stats.connections += 1;
    track(client);
    if (closing) return client.destroy();
    const connectionMode = mode;
    switch (connectionMode.kind) {
      case 'refuse':
        client.resetAndDestroy();
        return;
      case 'closeBeforeGreeting':
        client.destroy();
        return;
      case 'blackhole':
        // Read and discard, so the client never blocks on a full window; never answer.
        client.resume();
        client.on('end', () => client.destroy());
        return;
      default:
        relay(client, connectionMode);
    }
  });
  server.on('error', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the fault proxy has no TCP address');
  const port = address.port;

  return {
    host,
    port,
    setMode(next: FaultMode): void {
      mode = next;
    },
    get stats(): FaultProxyStats {
      return { ...stats };
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
