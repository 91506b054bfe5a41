import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { orphanSafeCommand } from '../../harness/processes.js';
import { waitFor } from '../../harness/wait-for.js';

/** Debian's package `prometheus` (.ci/run installs it). */
export const PROMETHEUS_BIN = '/usr/bin/prometheus';

/** One sample of an instant vector, as the HTTP API returns it. */
export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

/** One rule as `/api/v1/rules` reports it. */
export interface PromRule {
  readonly name: string;
  readonly type: 'alerting' | 'recording';
  readonly health: string;
  readonly lastError?: string;
}

/** A Prometheus server owned by a test: loopback only, its own temporary config and storage. */
export interface PrometheusServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The temporary directory holding its config and TSDB; removed by {@link stop}. */
  readonly dir: string;
  /** An instant query through the HTTP API; rejects on an API error. */
  query(expr: string): Promise<PromSample[]>;
  /** The value of a query that yields one sample, undefined when it yields none. */
  value(expr: string): Promise<number | undefined>;
  /** Every loaded rule with its evaluation health. */
  rules(): Promise<PromRule[]>;
  /** What the server logged so far (stderr). */
  output(): string;
  /** SIGTERM, wait for the exit (SIGKILL after 10 s), remove {@link dir}. Idempotent. */
  stop(): Promise<void>;
}

/** Prometheus did not come up; the message carries its log tail. */
export class PrometheusStartError extends Error {
  override readonly name = 'PrometheusStartError';
  readonly code = 'ERR_PROMETHEUS_START';
}

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

interface ApiResponse<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
}

async function api<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as ApiResponse<T>;
  if (body.status !== 'success') throw new Error(`prometheus API ${url}: ${body.error ?? res.status}`);
  return body.data;
}

/**
 * Starts `/usr/bin/prometheus` in the foreground with `configYaml` as its configuration, storage in a
 * temporary directory and the web listener on 127.0.0.1 at a port the kernel picks (read back from its
 * log). Resolves once `/-/ready` answers 200. The process is SIGKILLed if the test process dies.
 */
export async function startPrometheus(
  configYaml: string,
  files: Record<string, string> = {},
): Promise<PrometheusServer> {
  if (!existsSync(PROMETHEUS_BIN)) {
    throw new PrometheusStartError(`${PROMETHEUS_BIN} not found: apt-get install prometheus (see .ci/run)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'mailroom-prometheus-'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, configYaml);
  const guarded = orphanSafeCommand(PROMETHEUS_BIN, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    '--web.listen-address=127.0.0.1:0',
    '--storage.tsdb.retention.time=1h',
    '--log.level=info',
  ]);
  const child: ChildProcess = spawn(guarded.command, guarded.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (t: string) => (log += t));
  child.stderr?.setEncoding('utf8').on('data', (t: string) => (log += t));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const gone = await Promise.race([
        exited.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!gone) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    child.stdout?.destroy();
    child.stderr?.destroy();
    await rm(dir, { recursive: true, force: true });
  };

  let url = '';
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new PrometheusStartError('exited');
        const port = /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(log)?.[1];
        if (port !== undefined) url = `http://127.0.0.1:${port}`;
        return port !== undefined;
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, what: 'prometheus to listen' },
    );
    await waitFor(
      async () => (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })).status === 200,
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 100, what: 'prometheus to be ready' },
    );
  } catch (err) {
    await stop();
    throw new PrometheusStartError(
      `prometheus did not start: ${(err as Error).message}\n${log.slice(-3000)}`,
      {
        cause: err,
      },
    );
  }

  const query = async (expr: string): Promise<PromSample[]> => {
    const data = await api<{
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    }>(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`${expr}: a ${data.resultType}, not a vector`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };

  return {
    url,
    dir,
    query,
    async value(expr) {
      const result = await query(expr);
      if (result.length > 1) throw new Error(`${expr}: ${result.length} samples, expected at most one`);
      return result[0]?.value;
    },
    async rules() {
      const data = await api<{ groups: { rules: PromRule[] }[] }>(`${url}/api/v1/rules`);
      return data.groups.flatMap((g) => g.rules);
    },
    output: () => log,
    stop,
  };
}
