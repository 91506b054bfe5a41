import type { Redis } from 'ioredis';
import {
  ConfigError,
  NotFoundError,
  ValidationError,
  findControlCharacter,
  type FieldIssue,
} from '@mailroom/core';
import { LuaScript } from '@mailroom/queue';
import {
  API_SCOPES,
  hashApiKey,
  generateApiKey,
  hashesEqual,
  isApiScope,
  isKeyPrefix,
  parseApiKey,
  type ApiScope,
} from './api-key.js';
import { normalizeDomainRule } from './sender-domains.js';

/** What is stored about a key: never the key itself, only its keyed hash (kept out of this type). */
export interface ApiKeyRecord {
  /** Names the key in lists, logs and revocation; also the first part of the key. */
  readonly prefix: string;
  /** For people: what the key is for. */
  readonly name: string;
  readonly scopes: readonly ApiScope[];
  /** Allowed sender domains (`example.com`, `*.example.com`, `*`); empty: the key may send nothing. */
  readonly domains: readonly string[];
  readonly createdAt: number;
  /** Set once the key is revoked (ms); a revoked key never works again. */
  readonly revokedAt?: number;
  /** The key stops working at this instant (ms): set on the old key by a rotation with a grace period. */
  readonly expiresAt?: number;
  /** The key that replaced this one, after a rotation. */
  readonly rotatedTo?: string;
  /** The key this one replaced. */
  readonly rotatedFrom?: string;
  /**
   * The prefix of the first key of its rotation chain: what the key owns (idempotency keys, campaign drafts)
   * belongs to the chain, so a rotation mid-retry neither duplicates a message nor orphans a draft.
   */
  readonly lineage: string;
}

export interface NewApiKey {
  /** The key to hand to the application: shown once, never stored. */
  readonly key: string;
  readonly record: ApiKeyRecord;
}

export interface CreateApiKeyInput {
  readonly name?: string;
  readonly scopes: readonly string[];
  readonly domains?: readonly string[];
}

export type VerifyResult =
  | { readonly ok: true; readonly record: ApiKeyRecord }
  | { readonly ok: false; readonly reason: 'malformed' | 'unknown' | 'mismatch' | 'revoked' | 'expired' };

/**
 * createKey: KEYS[1] the key's hash, KEYS[2] the index set. ARGV: prefix, then field/value pairs.
 * Result: 1 created, 0 the prefix is taken (nothing written).
 */
const CREATE_KEY = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`;
/** revokeKey: KEYS[1] the key's hash; ARGV[1] now. Result: 1 revoked now, 2 was revoked already, 0 unknown. */
const REVOKE_KEY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revokedAt') == 1 then return 2 end
redis.call('HSET', KEYS[1], 'revokedAt', ARGV[1])
return 1
`;
const scripts = {
  create: new LuaScript('createApiKey', CREATE_KEY),
  revoke: new LuaScript('revokeApiKey', REVOKE_KEY),
};
const MAX_NAME_CHARS = 100;
const CREATE_ATTEMPTS = 3;
/** A hash of nothing in particular: compared against when the prefix is unknown, so timing says nothing. */
const DUMMY_HASH = '0'.repeat(64);

/**
 * API keys in Redis, under the queue prefix (so under its hash tag): `<prefix>:api:key:<key prefix>` holds
 * one key's record and its HMAC-SHA256 (keyed with the server's pepper), `<prefix>:api:keys` lists the
 * prefixes. A key is looked up by its prefix and its hash compared in constant time.
 */
export class ApiKeyStore {
  /**
   * @param pepper the server-side secret keyed into every stored hash (MAILROOM_API_KEY_PEPPER), at least 32
   *   characters; only creating, rotating and verifying keys need it (listing and revoking do not).
   */
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly pepper?: string,
  ) {
    if (pepper !== undefined && pepper.length < 32) {
      throw new ConfigError([
        { field: 'MAILROOM_API_KEY_PEPPER', message: 'must be at least 32 characters' },
      ]);
    }
  }

  private hash(key: string): string {
    if (this.pepper === undefined) {
      throw new ConfigError([
        { field: 'MAILROOM_API_KEY_PEPPER', message: 'is required to create or check keys' },
      ]);
    }
    return hashApiKey(key, this.pepper);
  }

  private keyOf(keyPrefix: string): string {
    return `${this.prefix}:api:key:${keyPrefix}`;
  }

  private get indexKey(): string {
    return `${this.prefix}:api:keys`;
  }

  /** Creates a key. Throws ValidationError naming a bad scope, domain or name. The key is returned once. */
  async create(input: CreateApiKeyInput, extra: Record<string, string> = {}): Promise<NewApiKey> {
    const { name, scopes, domains } = validateKeyInput(input);
    for (let attempt = 1; ; attempt++) {
      const { key, prefix } = generateApiKey();
      const createdAt = Date.now();
      const fields: Record<string, string> = {
        lineage: prefix,
        hash: this.hash(key),
        name,
        scopes: scopes.join(','),
        domains: domains.join(','),
        createdAt: String(createdAt),
        ...extra,
      };
      const created = await scripts.create.run(
        this.redis,
        [this.keyOf(prefix), this.indexKey],
        [prefix, ...Object.entries(fields).flat()],
      );
      if (Number(created) === 1) return { key, record: toRecord(prefix, fields) };
      if (attempt >= CREATE_ATTEMPTS) throw new Error('could not find a free API key prefix');
    }
  }

  /** Checks a presented key: well-formed, known, hash equal (constant time), not revoked, not expired. */
  async verify(presented: string, now = Date.now()): Promise<VerifyResult> {
    const parsed = parseApiKey(presented);
    const stored = parsed === undefined ? {} : await this.redis.hgetall(this.keyOf(parsed.prefix));
    const equal = hashesEqual(this.hash(presented), stored.hash ?? DUMMY_HASH);
    if (parsed === undefined) return { ok: false, reason: 'malformed' };
    if (stored.hash === undefined) return { ok: false, reason: 'unknown' };
    if (!equal) return { ok: false, reason: 'mismatch' };
    const record = toRecord(parsed.prefix, stored);
    if (record.revokedAt !== undefined) return { ok: false, reason: 'revoked' };
    if (record.expiresAt !== undefined && record.expiresAt <= now) return { ok: false, reason: 'expired' };
    return { ok: true, record };
  }

  async get(keyPrefix: string): Promise<ApiKeyRecord | undefined> {
    if (!isKeyPrefix(keyPrefix)) return undefined;
    const stored = await this.redis.hgetall(this.keyOf(keyPrefix));
    return stored.hash === undefined ? undefined : toRecord(keyPrefix, stored);
  }

  /** Every key's record (never a hash), oldest first. */
  async list(): Promise<ApiKeyRecord[]> {
    const prefixes = await this.redis.smembers(this.indexKey);
    if (prefixes.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const p of prefixes) pipeline.hgetall(this.keyOf(p));
    const replies = (await pipeline.exec()) ?? [];
    const records: ApiKeyRecord[] = [];
    prefixes.forEach((p, i) => {
      const [err, value] = replies[i] ?? [null, {}];
      const stored = (err ? {} : value) as Record<string, string>;
      if (stored.hash !== undefined) records.push(toRecord(p, stored));
    });
    return records.sort((a, b) => a.createdAt - b.createdAt || a.prefix.localeCompare(b.prefix));
  }

  /** Revokes a key at once. Resolves false when it was already revoked; NotFoundError for an unknown prefix. */
  async revoke(keyPrefix: string, now = Date.now()): Promise<boolean> {
    if (!isKeyPrefix(keyPrefix)) throw new NotFoundError(`no API key ${keyPrefix}`);
    const result = Number(await scripts.revoke.run(this.redis, [this.keyOf(keyPrefix)], [now]));
    if (result === 0) throw new NotFoundError(`no API key ${keyPrefix}`);
    return result === 1;
  }

  /**
   * Issues a new key with the same name, scopes and domains and retires the old one: at once (graceSeconds
   * 0, the default: the old key may have leaked) or after `graceSeconds`, so applications can switch over.
   */
  async rotate(
    keyPrefix: string,
    options: { graceSeconds?: number } = {},
    now = Date.now(),
  ): Promise<NewApiKey> {
    const old = await this.get(keyPrefix);
    if (old === undefined) throw new NotFoundError(`no API key ${keyPrefix}`);
    if (old.revokedAt !== undefined || (old.expiresAt !== undefined && old.expiresAt <= now)) {
      throw new ValidationError([{ field: 'prefix', message: `API key ${keyPrefix} is no longer valid` }]);
    }
    const grace = options.graceSeconds ?? 0;
    if (!Number.isInteger(grace) || grace < 0 || grace > 30 * 86400) {
      throw new ValidationError([{ field: 'graceSeconds', message: 'must be an integer from 0 to 2592000' }]);
    }
    const fresh = await this.create(
      { name: old.name, scopes: old.scopes, domains: old.domains },
      { rotatedFrom: keyPrefix, lineage: old.lineage },
    );
    const key = this.keyOf(keyPrefix);
    if (grace === 0) {
      await this.redis.hset(key, { rotatedTo: fresh.record.prefix, revokedAt: String(now) });
    } else {
      const until = now + grace * 1000;
      const expiresAt = old.expiresAt === undefined ? until : Math.min(old.expiresAt, until);
      await this.redis.hset(key, { rotatedTo: fresh.record.prefix, expiresAt: String(expiresAt) });
    }
    return fresh;
  }
}

function validateKeyInput(input: CreateApiKeyInput): {
  name: string;
  scopes: ApiScope[];
  domains: string[];
} {
  const issues: FieldIssue[] = [];
  const name = (input.name ?? '').trim();
  if (name.length > MAX_NAME_CHARS || findControlCharacter(name) !== undefined || name.includes(',')) {
    issues.push({ field: 'name', message: `must be at most ${MAX_NAME_CHARS} printable characters` });
  }
  const scopes = [...new Set(input.scopes.map((s) => s.trim()).filter((s) => s !== ''))];
  if (scopes.length === 0) {
    issues.push({ field: 'scopes', message: `give at least one of ${API_SCOPES.join(', ')}` });
  }
  for (const scope of scopes) {
    if (!isApiScope(scope)) {
      issues.push({ field: 'scopes', message: `"${scope}" is not one of ${API_SCOPES.join(', ')}` });
    }
  }
  const domains: string[] = [];
  for (const rule of input.domains ?? []) {
    if (rule.trim() === '') continue;
    try {
      const normalized = normalizeDomainRule(rule);
      if (!domains.includes(normalized)) domains.push(normalized);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      for (const issue of err.issues)
        issues.push({ field: 'domains', message: `"${rule}": ${issue.message}` });
    }
  }
  if (issues.length > 0) throw new ValidationError(issues);
  return { name, scopes: scopes as ApiScope[], domains };
}

function toRecord(prefix: string, h: Record<string, string>): ApiKeyRecord {
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
  const split = (v: string | undefined) => (v === undefined || v === '' ? [] : v.split(','));
  const optional = {
    revokedAt: num(h.revokedAt),
    expiresAt: num(h.expiresAt),
    rotatedTo: h.rotatedTo,
    rotatedFrom: h.rotatedFrom,
  };
  return {
    prefix,
    name: h.name ?? '',
    scopes: split(h.scopes).filter(isApiScope),
    domains: split(h.domains),
    createdAt: Number(h.createdAt ?? 0),
    lineage: h.lineage ?? prefix,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
}
