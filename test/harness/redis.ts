import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from './ports.js';
import { orphanSafeCommand } from './processes.js';

/** How the test's redis-server is configured. */
export interface RedisServerOptions {
  /** Persist every write to the append-only file in {@link RedisServer.dir}. Default `true`. */
  appendonly?: boolean;
  /** When Redis fsyncs the AOF. Default `'everysec'` (up to about a second of writes can be lost on power loss). */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Eviction policy. Default `'noeviction'` (the only one BullMQ tolerates). */
  maxmemoryPolicy?: string;
  /** Memory limit in Redis syntax, e.g. `'64mb'`. Default: none. */
  maxmemory?: string;
  /** Further `redis-server` command-line arguments, appended as given (e.g. `['--loglevel', 'debug']`). */
  extraArgs?: string[];
}

/** ioredis options of {@link RedisServer.client} (RESP2 replies only: `replyMapping` would change the client's type). */
export type TestClientOptions = Omit<RedisOptions, 'replyMapping'>;

/** A redis-server process owned by a test: bound to 127.0.0.1, in its own temporary directory. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** The server's own temporary directory (AOF and `redis.log` live here). */
  readonly dir: string;
  /** Pid of the running process; `undefined` while it is down. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /**
   * A new ioredis client for this server (ioredis defaults unless `options` says otherwise; named
   * `mailroom-test-N` in CLIENT LIST), tracked and closed by {@link stop}.
   */
  client(options?: TestClientOptions): Redis;
  /** Closes the tracked clients, shuts the server down (SIGTERM), waits for the exit, removes {@link dir}. Idempotent. */
  stop(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL) and waits for the exit; keeps {@link dir} for {@link restart}.
   * SIGSTOP, SIGTSTP and SIGCONT are sent without waiting (the process does not exit).
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and directory (replaying the AOF); resolves when it answers. */
  restart(): Promise<void>;
  /** `CLIENT PAUSE ms ALL` from a separate connection: every client's commands wait `ms` milliseconds. */
  pause(ms: number): Promise<void>;
}

/** redis-server did not come up (the message carries its log tail), or was used after {@link RedisServer.stop}. */
export class RedisServerError extends Error {
  override readonly name = 'RedisServerError';
  constructor(
    readonly code: 'ERR_REDIS_START' | 'ERR_REDIS_STOPPED' | 'ERR_REDIS_EXIT_TIMEOUT',
    message: string,
  ) {
    super(message);
  }
}

/** Redis answered a command with an error reply (`-ERR ...`). */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
  readonly code = 'ERR_REDIS_REPLY';
}

/** A decoded RESP2 reply: simple and bulk strings, integers, nil, arrays. */
export type RespReply = string | number | null | RespReply[];

const HOST = '127.0.0.1';
const REDIS_SERVER = '/usr/bin/redis-server';
/** Startup, shutdown and raw-command bounds (ms). Redis starts in a few ms; AOF replay of a test dataset in well under a second. */
const START_TIMEOUT_MS = 15_000;
const PROBE_INTERVAL_MS = 25;
const PROBE_TIMEOUT_MS = 1000;
const EXIT_TIMEOUT_MS = 10_000;
const CLIENT_QUIT_TIMEOUT_MS = 1000;
const FRESH_PORT_ATTEMPTS = 5;
const SAME_PORT_ATTEMPTS = 20;
const SAME_PORT_RETRY_MS = 250;
const NON_TERMINATING_SIGNALS = new Set<NodeJS.Signals>(['SIGSTOP', 'SIGTSTP', 'SIGCONT']);

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `promise` settles within `ms`; the timer is cleared either way, so it leaves no handle behind. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------
// A minimal RESP client: the harness needs to talk to Redis without ioredis' reconnection machinery (start-up
// probes, CLIENT PAUSE, CLIENT LIST), and to leave no handle behind once a command is answered.

function encodeCommand(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
}

type Parsed = { value: RespReply | RedisReplyError; next: number } | undefined;

function parseReply(buf: Buffer, offset: number): Parsed {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new RedisReplyError(line), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: RespReply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at);
        if (!item) return undefined;
        if (item.value instanceof RedisReplyError) return item;
        items.push(item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/**
 * Sends `commands` pipelined on a fresh connection to 127.0.0.1:`port`, closes it and resolves with one
 * reply per command once the connection is closed. Rejects with {@link RedisReplyError} if any reply is an
 * error, or with a connection error or timeout (default 5000 ms).
 */
export function sendRedisCommands(
  port: number,
  commands: readonly (readonly string[])[],
  options: { host?: string; timeoutMs?: number } = {},
): Promise<RespReply[]> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise<RespReply[]>((resolve, reject) => {
    const socket = connect({ host: options.host ?? HOST, port });
    const replies: (RespReply | RedisReplyError)[] = [];
    let buffer: Buffer = Buffer.alloc(0);
    let failure: Error | undefined;
    const timer = setTimeout(() => {
      failure = new Error(`no reply from redis on port ${port} within ${timeoutMs}ms`);
      socket.destroy();
    }, timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(commands.map(encodeCommand).join('')));
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      try {
        for (;;) {
          if (replies.length === commands.length) break;
          const parsed = parseReply(buffer, 0);
          if (!parsed) break;
          replies.push(parsed.value);
          buffer = buffer.subarray(parsed.next);
        }
      } catch (err) {
        failure = err as Error;
        socket.destroy();
        return;
      }
      if (replies.length === commands.length) socket.end();
    });
    socket.on('error', (err) => {
      failure ??= err;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const replyError = replies.find((reply) => reply instanceof RedisReplyError);
      if (replyError) reject(replyError);
      else if (replies.length === commands.length) resolve(replies as RespReply[]);
      else reject(failure ?? new Error(`redis on port ${port} closed the connection before replying`));
    });
  });
}

// ---------------------------------------------------------------------------------------------------------

/** Servers whose process may be alive: SIGKILLed (and their directories removed) if this process exits first. */
const liveServers = new Set<ManagedRedisServer>();

process.on('exit', () => {
  for (const server of liveServers) server.abandon();
});

interface Launched {
  child: ChildProcess;
  exit: Promise<void>;
}

class ManagedRedisServer implements RedisServer {
  readonly host = HOST;
  #port: number;
  readonly #args: (port: number) => string[];
  readonly #clients = new Set<Redis>();
  #clientCount = 0;
  #current: Launched | undefined;
  #stopping: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    port: number,
    args: (port: number) => string[],
  ) {
    this.#port = port;
    this.#args = args;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `redis://${this.host}:${this.#port}`;
  }

  get running(): boolean {
    const child = this.#current?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.running ? this.#current?.child.pid : undefined;
  }

  /** First start: a new port for each attempt whose bind failed (someone took the port freePort gave us). */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#launch();
      if (outcome === 'ready') return;
      if (!outcome.portTaken || attempt >= FRESH_PORT_ATTEMPTS) throw outcome.error;
      this.#port = await freePort(HOST);
    }
  }

  client(options: TestClientOptions = {}): Redis {
    this.#assertNotStopped();
    this.#clientCount += 1;
    const client = new Redis({
      host: this.host,
      port: this.#port,
      connectionName: `mailroom-test-${this.#clientCount}`,
      ...options,
    });
    this.#clients.add(client);
    client.once('end', () => this.#clients.delete(client));
    return client;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const current = this.#current;
    if (!current || !this.running) return;
    current.child.kill(signal);
    if (NON_TERMINATING_SIGNALS.has(signal)) return;
    await this.#awaitExit(current);
  }

  async restart(): Promise<void> {
    this.#assertNotStopped();
    await this.#shutdown();
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#launch();
      if (outcome === 'ready') return;
      // The old listening socket is gone, but give the kernel (or a process that grabbed the port while
      // Redis was down) a little time before giving up on this port.
      if (!outcome.portTaken || attempt >= SAME_PORT_ATTEMPTS) throw outcome.error;
      await delay(SAME_PORT_RETRY_MS);
    }
  }

  async pause(ms: number): Promise<void> {
    this.#assertNotStopped();
    await sendRedisCommands(this.#port, [['CLIENT', 'PAUSE', String(Math.round(ms)), 'ALL']]);
  }

  /** Last resort from the process 'exit' hook: synchronous, no waiting. */
  abandon(): void {
    if (this.running) this.#current?.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  #assertNotStopped(): void {
    if (this.#stopping)
      throw new RedisServerError('ERR_REDIS_STOPPED', `redis on port ${this.#port} was stopped`);
  }

  async #stop(): Promise<void> {
    await this.#closeClients();
    await this.#shutdown();
    liveServers.delete(this);
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Graceful shutdown (SIGTERM makes Redis fsync the AOF and exit), SIGKILL if it does not exit in time. */
  async #shutdown(): Promise<void> {
    const current = this.#current;
    if (!current || !this.running) return;
    current.child.kill('SIGTERM');
    // A server frozen with SIGSTOP would only act on the SIGTERM once continued.
    current.child.kill('SIGCONT');
    if (await settlesWithin(current.exit, EXIT_TIMEOUT_MS)) return;
    current.child.kill('SIGKILL');
    await this.#awaitExit(current);
  }

  async #awaitExit(current: Launched): Promise<void> {
    if (!(await settlesWithin(current.exit, EXIT_TIMEOUT_MS))) {
      throw new RedisServerError(
        'ERR_REDIS_EXIT_TIMEOUT',
        `redis pid ${current.child.pid} did not exit within ${EXIT_TIMEOUT_MS}ms`,
      );
    }
  }

  async #closeClients(): Promise<void> {
    await Promise.all(
      [...this.#clients].map(async (client) => {
        if (client.status === 'ready') {
          // QUIT lets the server finish what the client sent; a paused or dead server gets a disconnect.
          await settlesWithin(client.quit(), CLIENT_QUIT_TIMEOUT_MS);
        }
        if (client.status !== 'end') {
          // Between two attempts there is no socket to close: disconnect() only cancels the retry timer and
          // no 'end' follows. Otherwise 'end' follows once the socket is closed.
          const between = client.status === 'reconnecting';
          const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
          client.disconnect();
          if (!between) await settlesWithin(ended, CLIENT_QUIT_TIMEOUT_MS);
        }
        this.#clients.delete(client);
      }),
    );
  }

  /**
   * Spawns redis-server on the current port and waits until it answers as itself (INFO's process_id is
   * our child: a PONG could come from another process that won the race for the port).
   */
  async #launch(): Promise<'ready' | { error: RedisServerError; portTaken: boolean }> {
    const port = this.#port;
    const logPath = join(this.dir, 'redis.log');
    // The log is appended to by every start in this directory: only this start's part tells why it failed.
    const logStart = await stat(logPath).then(
      (stats) => stats.size,
      () => 0,
    );
    const guarded = orphanSafeCommand(REDIS_SERVER, this.#args(port));
    const child = spawn(guarded.command, guarded.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let consoleOutput = '';
    const keep = (chunk: Buffer): void => {
      consoleOutput = (consoleOutput + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    // 'close' rather than 'exit': the console pipes are drained and closed too.
    const exit = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const launched: Launched = { child, exit };
    this.#current = launched;
    liveServers.add(this);

    const deadline = performance.now() + START_TIMEOUT_MS;
    let lastProbeError: unknown;
    let timedOut = false;
    while (child.exitCode === null && child.signalCode === null && spawnError === undefined) {
      try {
        const [info] = await sendRedisCommands(port, [['INFO', 'server']], { timeoutMs: PROBE_TIMEOUT_MS });
        const pid = /process_id:(\d+)/.exec(typeof info === 'string' ? info : '')?.[1];
        if (pid !== undefined && Number(pid) === child.pid) return 'ready';
        lastProbeError = new Error(`port ${port} is answered by pid ${pid}, not ours (${child.pid})`);
      } catch (err) {
        lastProbeError = err; // not listening yet, or LOADING the AOF
      }
      if (performance.now() > deadline) {
        timedOut = true;
        break;
      }
      await delay(PROBE_INTERVAL_MS);
    }
    if (child.exitCode === null && child.signalCode === null && spawnError === undefined)
      child.kill('SIGKILL');
    if (spawnError === undefined) await exit;
    const log = await readFile(logPath).then(
      (content) => content.subarray(logStart).toString('utf8'),
      () => '',
    );
    const logTail = log.split('\n').slice(-20).join('\n');
    const portTaken = /address already in use/i.test(log + consoleOutput);
    const reason = spawnError
      ? `could not spawn ${REDIS_SERVER}: ${spawnError.message}`
      : timedOut
        ? `redis-server on port ${port} did not answer within ${START_TIMEOUT_MS}ms (killed)`
        : `redis-server on port ${port} exited (code ${child.exitCode}, signal ${child.signalCode}) before answering`;
    const lastProbe = lastProbeError instanceof Error ? `\nlast probe: ${lastProbeError.message}` : '';
    return {
      error: new RedisServerError(
        'ERR_REDIS_START',
        `${reason}${lastProbe}\n--- console ---\n${consoleOutput}\n--- ${this.dir}/redis.log (tail) ---\n${logTail}`,
      ),
      portTaken,
    };
  }
}

/**
 * Starts a redis-server on 127.0.0.1 and a free port, in a new temporary directory, and resolves once it
 * answers. Retries on another port if the bind fails; rejects with the log tail if the server dies.
 * The server is SIGKILLed if this process exits without stopping it.
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-redis-'));
  const args = (port: number): string[] => [
    '--bind',
    HOST,
    '--port',
    String(port),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendonly === false ? 'no' : 'yes',
    '--appendfsync',
    options.appendfsync ?? 'everysec',
    '--maxmemory-policy',
    options.maxmemoryPolicy ?? 'noeviction',
    ...(options.maxmemory === undefined ? [] : ['--maxmemory', options.maxmemory]),
    '--enable-debug-command',
    'local',
    '--daemonize',
    'no',
    '--logfile',
    join(dir, 'redis.log'),
    ...(options.extraArgs ?? []),
  ];
  const server = new ManagedRedisServer(dir, await freePort(HOST), args);
  try {
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
