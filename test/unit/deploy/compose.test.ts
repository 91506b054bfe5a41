import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { workerSettings } from '@mailroom/worker';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const require = createRequire(import.meta.url);

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  container_name?: string;
  stop_grace_period?: string;
  deploy?: { replicas?: number };
}
interface ComposeFile {
  services: Record<string, ComposeService>;
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
  });

  it('pins every image to a version', () => {
    for (const [name, service] of Object.entries(loadCompose().services)) {
      if (service.image === undefined) continue;
      assert.match(
        service.image,
        /:[^:]*\d[^:]*$/,
        `${name}: image ${service.image} must carry a version tag`,
      );
      assert.doesNotMatch(service.image, /:latest$/, `${name}: no :latest`);
    }
  });

  it('runs Redis with AOF and noeviction', () => {
    const command = loadCompose().services.redis?.command?.join(' ') ?? '';
    assert.match(command, /--appendonly yes/);
    assert.match(command, /--maxmemory-policy noeviction/);
  });

  it('sets only MAILROOM_ variables the worker knows, and gives workers time to drain', () => {
    const worker = loadCompose().services.worker;
    assert.ok(worker);
    assert.equal(worker.deploy?.replicas, 3);
    assert.equal(worker.container_name, undefined, 'replicas cannot share a container name');
    for (const name of Object.keys(worker.environment ?? {})) {
      if (name.startsWith('MAILROOM_')) assert.ok(name in workerSettings, `${name} is not a worker setting`);
    }
    const drainMs = Number(worker.environment?.MAILROOM_SHUTDOWN_TIMEOUT_MS ?? '25000');
    assert.ok(
      seconds(worker.stop_grace_period ?? '10s') * 1000 > drainMs,
      'stop_grace_period exceeds the drain timeout',
    );
  });

  it('publishes ports on loopback only', () => {
    for (const [name, service] of Object.entries(loadCompose().services)) {
      for (const port of service.ports ?? []) assert.match(port, /^127\.0\.0\.1:/, `${name}: ${port}`);
    }
  });
});
