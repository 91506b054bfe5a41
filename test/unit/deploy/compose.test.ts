import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { apiSettings, loadApiConfig } from '@mailroom/api';
import { loadWorkerConfig, workerSettings } from '@mailroom/worker';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const require = createRequire(import.meta.url);

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  secrets?: string[];
  container_name?: string;
  stop_grace_period?: string;
  deploy?: { replicas?: number };
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  secrets?: Record<string, { environment?: string; file?: string }>;
  volumes?: Record<string, unknown>;
}

function loadCompose(): ComposeFile {
  return parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as ComposeFile;
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  assert.ok(m, `duration ${duration}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n;
}

/** Services that run the Mailroom image as a worker (workers and the queue-gauge process). */
function mailroomServices(compose: ComposeFile): [string, ComposeService][] {
  return Object.entries(compose.services).filter(
    ([, s]) =>
      (s.build !== undefined || (s.image ?? '').startsWith('mailroom:')) &&
      JSON.stringify(s.command ?? []) === JSON.stringify(['worker']),
  );
}

/** The environment as Compose would pass it, with `${VAR:?...}` interpolations given a value. */
function interpolated(env: Record<string, string>): NodeJS.ProcessEnv {
  const given: Record<string, string> = {
    MAILROOM_METRICS_TOKEN: 'a-metrics-token-of-forty-eight-characters-0123456',
    MAILROOM_API_KEY_PEPPER: 'an-api-key-pepper-of-at-least-thirty-two-characters',
  };
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [
      k,
      String(v).replace(/\$\{([A-Z_]+)(?::?[-?][^}]*)?\}/g, (_, name: string) => given[name] ?? ''),
    ]),
  );
}

/** `./host/path:/container/path[:ro]` bind mounts of a service, host path resolved from the repository root. */
function bindMounts(service: ComposeService): { host: string; target: string }[] {
  return (service.volumes ?? [])
    .filter((v) => v.startsWith('./'))
    .map((v) => {
      const [host, target] = v.split(':');
      return { host: join(ROOT, host!), target: target! };
    });
}

describe('docker-compose.yml (validated offline: no Docker engine runs here)', () => {
  it('matches the Compose specification schema', () => {
    const schemaPath = join(
      dirname(require.resolve('dclint/package.json')),
      'schemas',
      'compose.schema.json',
    );
    const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
    delete schema.$schema; // a draft-07 URL Ajv 8 does not know by that name
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const ok = validate(loadCompose());
    assert.ok(ok, JSON.stringify(validate.errors, null, 2));
    // And the schema does catch a misspelt key.
    const broken = loadCompose() as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services.redis!.restrat = 'always';
    assert.equal(validate(broken), false);
  });

  it('pins every image to a version', () => {
    const services = Object.entries(loadCompose().services);
    assert.ok(services.length >= 6);
    for (const [name, service] of services) {
      if (service.image === undefined) continue;
      assert.match(
        service.image,
        /:[^:]*\d[^:]*$/,
        `${name}: image ${service.image} must carry a version tag`,
      );
      assert.doesNotMatch(service.image, /:latest$/, `${name}: no :latest`);
    }
  });

  it('runs Redis with AOF, noeviction and a volume for its data', () => {
    const compose = loadCompose();
    const redis = compose.services.redis;
    const command = redis?.command?.join(' ') ?? '';
    assert.match(command, /--appendonly yes/);
    assert.match(command, /--maxmemory-policy noeviction/);
    const data = (redis?.volumes ?? []).find((v) => v.endsWith(':/data'));
    assert.ok(data, 'a volume at /data');
    assert.ok(
      compose.volumes && data.split(':')[0]! in compose.volumes,
      'a named volume, kept across restarts',
    );
  });

  it('gives every Mailroom process a configuration the worker accepts, with only MAILROOM_ variables it knows', () => {
    const services = mailroomServices(loadCompose());
    assert.ok(services.length >= 2);
    for (const [name, service] of services) {
      const env = service.environment ?? {};
      for (const variable of Object.keys(env)) {
        if (variable.startsWith('MAILROOM_'))
          assert.ok(variable in workerSettings, `${name}: ${variable} is not a worker setting`);
      }
      const config = loadWorkerConfig(interpolated(env));
      assert.ok(config.http, `${name}: serves /metrics`);
      assert.ok(
        env.MAILROOM_METRICS_TOKEN?.includes('${MAILROOM_METRICS_TOKEN:?'),
        `${name}: the token is required`,
      );
      assert.equal(service.container_name, undefined, `${name}: no container name (replicas, restarts)`);
      const drainMs = Number(env.MAILROOM_SHUTDOWN_TIMEOUT_MS ?? '25000');
      assert.ok(
        seconds(service.stop_grace_period ?? '10s') * 1000 > drainMs,
        `${name}: stop_grace_period exceeds the drain`,
      );
    }
  });

  it('runs the HTTP API with a configuration it accepts, its pepper required, published on loopback only', () => {
    const compose = loadCompose();
    const api = compose.services.api;
    assert.ok(api, 'an api service');
    assert.deepEqual(api.command, ['api']);
    const env = api.environment ?? {};
    for (const variable of Object.keys(env)) {
      assert.ok(variable in apiSettings, `api: ${variable} is not an API setting`);
    }
    assert.ok(env.MAILROOM_API_KEY_PEPPER?.includes('${MAILROOM_API_KEY_PEPPER:?'), 'the pepper is required');
    const config = loadApiConfig(interpolated(env));
    assert.equal(config.port, 8465);
    const ports = (api as { ports?: string[] }).ports ?? [];
    assert.ok(
      ports.length > 0 && ports.every((p) => p.startsWith('127.0.0.1:')),
      `published on loopback: ${ports.join(', ')}`,
    );
    assert.ok(
      seconds(api.stop_grace_period ?? '10s') * 1000 >
        Number(env.MAILROOM_API_SHUTDOWN_TIMEOUT_MS ?? '10000'),
      'stop_grace_period exceeds the drain',
    );
  });

  it('runs three worker replicas and exactly one queue-gauge process', () => {
    const compose = loadCompose();
    assert.equal(compose.services.worker?.deploy?.replicas, 3);
    assert.equal(compose.services.worker?.environment?.MAILROOM_QUEUE_GAUGES, undefined);
    const gaugeRoles = mailroomServices(compose).filter(
      ([, s]) => s.environment?.MAILROOM_QUEUE_GAUGES === 'true',
    );
    assert.deepEqual(
      gaugeRoles.map(([name]) => name),
      ['queue-gauges'],
    );
    assert.ok(
      (gaugeRoles[0]![1].deploy?.replicas ?? 1) === 1,
      'one replica: the gauges must not be repeated',
    );
  });

  it('scrapes every worker replica and the queue-gauge process with the metrics token', () => {
    const compose = loadCompose();
    const prometheus = compose.services.prometheus;
    assert.ok(prometheus);
    const mount = bindMounts(prometheus).find((m) => m.target === '/etc/prometheus');
    assert.ok(
      mount && existsSync(join(mount.host, 'prometheus.yml')),
      'deploy/prometheus mounted at /etc/prometheus',
    );
    interface ScrapeConfig {
      job_name: string;
      authorization?: { credentials_file?: string };
      dns_sd_configs?: { names: string[]; port: number }[];
      static_configs?: { targets: string[] }[];
    }
    const config = parse(readFileSync(join(mount.host, 'prometheus.yml'), 'utf8')) as {
      scrape_configs: ScrapeConfig[];
    };
    const scraped = new Map<string, number>();
    for (const job of config.scrape_configs) {
      const secret = /^\/run\/secrets\/(.+)$/.exec(job.authorization?.credentials_file ?? '')?.[1];
      assert.ok(
        secret && prometheus.secrets?.includes(secret),
        `${job.job_name}: reads the token from a secret`,
      );
      assert.equal(compose.secrets?.[secret]?.environment, 'MAILROOM_METRICS_TOKEN');
      for (const sd of job.dns_sd_configs ?? []) for (const n of sd.names) scraped.set(n, sd.port);
      for (const sc of job.static_configs ?? []) {
        for (const t of sc.targets) scraped.set(t.split(':')[0]!, Number(t.split(':')[1]));
      }
    }
    const services = mailroomServices(compose);
    assert.deepEqual(
      [...scraped.keys()].sort(),
      services.map(([n]) => n).sort(),
      'every Mailroom service, no other',
    );
    for (const [name, service] of services) {
      assert.equal(
        scraped.get(name),
        Number(service.environment?.MAILROOM_HTTP_PORT),
        `${name}: its metrics port`,
      );
    }
  });

  it('provisions Grafana with the Prometheus data source and the dashboard', () => {
    const compose = loadCompose();
    const grafana = compose.services.grafana;
    assert.ok(grafana);
    const mounts = bindMounts(grafana);
    const provisioning = mounts.find((m) => m.target === '/etc/grafana/provisioning');
    const dashboards = mounts.find((m) => m.target.startsWith('/var/lib/grafana/dashboards'));
    assert.ok(provisioning && dashboards);
    const datasources = parse(
      readFileSync(join(provisioning.host, 'datasources', 'prometheus.yml'), 'utf8'),
    ) as {
      datasources: { type: string; url: string }[];
    };
    assert.equal(datasources.datasources[0]?.type, 'prometheus');
    assert.match(datasources.datasources[0]?.url ?? '', /^http:\/\/prometheus:9090$/);
    assert.ok(compose.services.prometheus?.ports?.some((p) => p.endsWith(':9090')));
    const provider = parse(readFileSync(join(provisioning.host, 'dashboards', 'mailroom.yml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    assert.equal(
      provider.providers[0]?.options.path,
      dashboards.target,
      'the provider reads the mounted dashboards',
    );
    const home = grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    assert.ok(home.startsWith(`${dashboards.target}/`));
    assert.ok(existsSync(join(dashboards.host, home.slice(dashboards.target.length + 1))), `${home} exists`);
  });

  it('mounts only paths that exist and publishes ports on loopback only', () => {
    for (const [name, service] of Object.entries(loadCompose().services)) {
      for (const mount of bindMounts(service))
        assert.ok(existsSync(mount.host), `${name}: ${mount.host} exists`);
      for (const port of service.ports ?? []) assert.match(port, /^127\.0\.0\.1:/, `${name}: ${port}`);
    }
  });
});
