import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { INLINE_PART_MAX_BYTES, type PartRef } from './job-data.js';
import { mailroomKeys } from './keys.js';

/**
 * storeContent: store content-addressed parts, or extend the life of parts already stored.
 * KEYS: the content keys, one per part.
 * ARGV[1]: time to live in seconds; ARGV[1 + i]: the content of KEYS[i].
 * Result: the number of parts that were newly written.
 * A part already present keeps its bytes (same hash, same content) and gets its expiry raised to the TTL
 * (EXPIRE GT never shortens the life that another message needs).
 */
const STORE_CONTENT_LUA = `
local ttl = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  if redis.call('EXPIRE', key, ttl, 'GT') == 0 then
    if redis.call('EXISTS', key) == 0 then
      redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
      written = written + 1
    end
  end
end
return written
`;

export class ContentMissingError extends Error {
  override readonly name = 'ContentMissingError';
  constructor(readonly refs: readonly string[]) {
    super(`stored content missing for ${refs.length} part(s)`);
  }
}

export interface ContentStoreOptions {
  /** Bytes of resolved content kept in memory, least recently used dropped first (default 64 MiB). */
  cacheBytes?: number;
}

/**
 * Content shared by many messages (a newsletter's HTML, an attachment) is stored once under its SHA-256.
 * Content is immutable for a given hash, so workers can cache it without invalidation.
 */
export class ContentStore {
  private readonly keys;
  private readonly cache = new Map<string, string>();
  private cachedBytes = 0;
  private readonly cacheLimit: number;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    options: ContentStoreOptions = {},
  ) {
    this.keys = mailroomKeys(prefix);
    this.cacheLimit = options.cacheBytes ?? 64 * 1024 * 1024;
  }

  /**
   * Turns a part into what a job carries: small parts inline, larger ones as a reference whose content is
   * collected into `pending` for one `store()` call.
   */
  static toPartRef(content: string, pending: Map<string, string>): PartRef {
    const bytes = Buffer.byteLength(content, 'utf8');
    if (bytes <= INLINE_PART_MAX_BYTES) return { inline: content };
    const ref = createHash('sha256').update(content, 'utf8').digest('hex');
    pending.set(ref, content);
    return { ref, bytes };
  }

  /** Stores parts (or extends their life) in one round trip. */
  async store(parts: ReadonlyMap<string, string>, ttlSeconds: number): Promise<void> {
    if (parts.size === 0) return;
    const keys = [...parts.keys()].map((ref) => this.keys.content(ref));
    await this.redis.eval(
      STORE_CONTENT_LUA,
      keys.length,
      ...keys,
      String(Math.ceil(ttlSeconds)),
      ...parts.values(),
    );
  }

  /** Resolves references, from memory when possible, else with one MGET. */
  async load(refs: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const ref of refs) {
      const hit = this.cache.get(ref);
      if (hit === undefined) missing.push(ref);
      else {
        // refresh recency
        this.cache.delete(ref);
        this.cache.set(ref, hit);
        out.set(ref, hit);
      }
    }
    if (missing.length === 0) return out;
    const values = await this.redis.mget(...missing.map((ref) => this.keys.content(ref)));
    const lost: string[] = [];
    missing.forEach((ref, i) => {
      const value = values[i];
      if (value === null || value === undefined) lost.push(ref);
      else {
        out.set(ref, value);
        this.remember(ref, value);
      }
    });
    if (lost.length > 0) throw new ContentMissingError(lost);
    return out;
  }

  private remember(ref: string, value: string): void {
    const size = value.length;
    if (size > this.cacheLimit) return;
    this.cache.set(ref, value);
    this.cachedBytes += size;
    for (const [oldRef, oldValue] of this.cache) {
      if (this.cachedBytes <= this.cacheLimit) break;
      this.cache.delete(oldRef);
      this.cachedBytes -= oldValue.length;
    }
  }
}

/** The text of a part, given the content loaded for its job. */
export function resolvePart(part: PartRef, loaded: ReadonlyMap<string, string>): string {
  if ('inline' in part) return part.inline;
  const value = loaded.get(part.ref);
  if (value === undefined) throw new ContentMissingError([part.ref]);
  return value;
}
