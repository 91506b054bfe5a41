import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** A script that declares no key and names no hash-tagged prefix first cannot be routed on a Redis Cluster. */
export class LuaScriptRoutingError extends Error {
  override readonly name = 'LuaScriptRoutingError';
  readonly code = 'ERR_SCRIPT_ROUTING';
}

const HASH_TAG = /\{[^{}]+\}/;

/**
 * A Lua script run by SHA (EVALSHA), loaded on first use and again after a Redis restart or a failover
 * (NOSCRIPT), so the script text crosses the network once per server rather than on every call.
 *
 * On a Redis Cluster a script runs on the master of its first declared key's slot. Scripts that build their
 * keys inside from the prefix in ARGV[1] (the ledger's, the campaigns') declare none, so the prefix itself is
 * declared as KEYS[1] for them: it carries the hash tag every key of the deployment shares, so the script
 * lands on the right master. ARGV is unchanged and those scripts never read KEYS, so this is invisible on a
 * single Redis as well.
 */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(
    redis: Redis | Cluster,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    const declared = keys.length > 0 ? keys : this.routingKeys(redis, args);
    try {
      return await redis.evalsha(this.sha, declared.length, ...declared, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, declared.length, ...declared, ...args);
    }
  }

  /** `[prefix]` when ARGV[1] is a hash-tagged prefix; none otherwise (refused on a cluster: no slot to go to). */
  private routingKeys(redis: Redis | Cluster, args: readonly (string | number)[]): readonly string[] {
    const first = args[0];
    if (typeof first === 'string' && HASH_TAG.test(first)) return [first];
    if (redis.isCluster) {
      throw new LuaScriptRoutingError(
        `script ${this.name} declares no key and ARGV[1] is not a hash-tagged prefix: no cluster slot to run it on`,
      );
    }
    return [];
  }
}
