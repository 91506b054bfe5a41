import type { Command } from 'commander';
import { ApiKeyStore, type ApiKeyRecord } from '@mailroom/api';
import { ConfigError, NotFoundError, ValidationError } from '@mailroom/core';
import { asStoreConnection, createRedisConnection, type RedisTarget } from '@mailroom/queue';

export const API_KEY_ACTIONS = ['create', 'list', 'revoke', 'rotate'] as const;
export type ApiKeyAction = (typeof API_KEY_ACTIONS)[number];

export interface ApiKeyFlags {
  /** Redis: a URL, or a cluster or Sentinel spec (from MAILROOM_REDIS_*). */
  redisUrl: RedisTarget;
  prefix?: string;
  /** MAILROOM_API_KEY_PEPPER: the same value the API runs with (create and rotate need it). */
  pepper?: string;
  /** create: comma-separated scopes (send, read, admin). */
  scopes?: string;
  /** create: comma-separated sender domains (example.com, *.example.com, or * for any). */
  domains?: string;
  /** create: what the key is for. */
  name?: string;
  /** rotate: seconds the old key keeps working (default 0: retired at once). */
  graceSeconds?: string;
}

const split = (list: string | undefined) =>
  (list ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/** A record as printed: what the key may do, never a hash. */
function printable(record: ApiKeyRecord) {
  return {
    prefix: record.prefix,
    name: record.name,
    scopes: record.scopes,
    domains: record.domains,
    createdAt: new Date(record.createdAt).toISOString(),
    ...(record.revokedAt === undefined ? {} : { revokedAt: new Date(record.revokedAt).toISOString() }),
    ...(record.expiresAt === undefined ? {} : { expiresAt: new Date(record.expiresAt).toISOString() }),
    ...(record.rotatedTo === undefined ? {} : { rotatedTo: record.rotatedTo }),
    ...(record.rotatedFrom === undefined ? {} : { rotatedFrom: record.rotatedFrom }),
  };
}

/**
 * `mailroom api-key create|list|revoke|rotate`: API keys of the HTTP API, in Redis under the queue prefix.
 * A new key is printed once (`{"key": "mr_...", ...}`) and never again: only its HMAC is stored. Exit 2 for
 * bad input (each problem named), 1 for an unknown key prefix.
 */
export async function apiKeyCommand(
  action: ApiKeyAction,
  args: readonly string[],
  flags: ApiKeyFlags,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  if ((action === 'create' || action === 'rotate') && (flags.pepper === undefined || flags.pepper === '')) {
    err.write('MAILROOM_API_KEY_PEPPER: is required (the same value the API runs with)\n');
    return 2;
  }
  const grace = flags.graceSeconds === undefined ? 0 : Number(flags.graceSeconds);
  if (!Number.isInteger(grace) || grace < 0) {
    err.write(`--grace-seconds: must be a whole number of seconds (got "${flags.graceSeconds}")\n`);
    return 2;
  }
  const scopes = split(flags.scopes);
  const domains = split(flags.domains);
  if (action === 'create' && (scopes.includes('send') || scopes.includes('admin')) && domains.length === 0) {
    err.write('--domains: is required with the send scope (example.com, *.example.com, or * for any)\n');
    return 2;
  }
  const redis = asStoreConnection(
    createRedisConnection(flags.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: true }),
  );
  redis.on('error', () => undefined); // surfaced by the command that fails
  try {
    const store = new ApiKeyStore(redis, flags.prefix ?? '{mailroom}', flags.pepper || undefined);
    switch (action) {
      case 'create': {
        const created = await store.create({
          scopes,
          domains,
          ...(flags.name === undefined ? {} : { name: flags.name }),
        });
        out.write(`${JSON.stringify({ key: created.key, ...printable(created.record) })}\n`);
        err.write('Store this key now: it is shown once and cannot be recovered.\n');
        return 0;
      }
      case 'list':
        for (const record of await store.list()) out.write(`${JSON.stringify(printable(record))}\n`);
        return 0;
      case 'revoke': {
        const revoked = await store.revoke(args[0] ?? '');
        out.write(`${JSON.stringify({ prefix: args[0], revoked: true, already: !revoked })}\n`);
        return 0;
      }
      case 'rotate': {
        const rotated = await store.rotate(args[0] ?? '', { graceSeconds: grace });
        out.write(`${JSON.stringify({ key: rotated.key, ...printable(rotated.record) })}\n`);
        err.write(
          grace === 0
            ? `Key ${args[0]} no longer works. Store the new key now: it is shown once.\n`
            : `Key ${args[0]} works for ${grace} more seconds. Store the new key now: it is shown once.\n`,
        );
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof ValidationError || e instanceof ConfigError) {
      for (const issue of e.issues) err.write(`${issue.field}: ${issue.message}\n`);
      return 2;
    }
    if (e instanceof NotFoundError) {
      err.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    redis.disconnect();
  }
}

/** Registers `mailroom api-key create|list|revoke|rotate` on the program. */
export function registerApiKeyCommand(program: Command, defaultRedisUrl: () => RedisTarget): void {
  const apiKey = program
    .command('api-key')
    .description('API keys of the HTTP API (MAILROOM_API_KEY_PEPPER: the same as the API server)');
  const define = (name: string, description: string) =>
    apiKey
      .command(name)
      .description(description)
      .option(
        '--redis-url <url>',
        'Redis URL (default: MAILROOM_REDIS_URL, REDIS_URL or redis://127.0.0.1:6379)',
      )
      .option('--prefix <prefix>', 'queue key prefix (default {mailroom})');
  type Options = Omit<ApiKeyFlags, 'redisUrl' | 'pepper'> & { redisUrl?: string };
  const run = async (action: ApiKeyAction, args: readonly string[], opts: Options): Promise<void> => {
    process.exitCode = await apiKeyCommand(
      action,
      args,
      {
        ...opts,
        redisUrl: opts.redisUrl ?? defaultRedisUrl(),
        ...(process.env.MAILROOM_API_KEY_PEPPER === undefined
          ? {}
          : { pepper: process.env.MAILROOM_API_KEY_PEPPER }),
      },
      process.stdout,
      process.stderr,
    );
  };
  define('create', 'create a key; prints it once as JSON ({"key":"mr_...", ...})')
    .requiredOption('--scopes <list>', 'comma-separated: send, read, admin (admin includes the others)')
    .option('--domains <list>', 'sender domains the key may send from: example.com, *.example.com, or *')
    .option('--name <text>', 'what the key is for')
    .action((opts: Options) => run('create', [], opts));
  define('list', 'print every key (prefix, scopes, domains, state) as JSON lines; never the keys').action(
    (opts: Options) => run('list', [], opts),
  );
  define('revoke', 'revoke a key at once, by its prefix')
    .argument('<prefix>')
    .action((prefix: string, opts: Options) => run('revoke', [prefix], opts));
  define('rotate', 'issue a new key with the same scopes and domains and retire the old one')
    .argument('<prefix>')
    .option('--grace-seconds <n>', 'the old key keeps working this long (default 0: retired at once)')
    .action((prefix: string, opts: Options) => run('rotate', [prefix], opts));
}
