import type { Redis } from 'ioredis';
import { ConfigError, type FieldIssue } from '@mailroom/core';

function infoField(info: string, name: string): string | undefined {
  const line = info.split('\r\n').find((l) => l.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/**
 * Refuses a Redis that can lose Mailroom's data: eviction would drop jobs and locks (BullMQ only warns), and
 * without AOF a restart loses every queued message. Reads INFO, which managed Redis services allow even where
 * CONFIG is disabled. Returns the problems; the caller throws or, when explicitly allowed, warns.
 */
export async function checkRedisDurability(redis: Redis): Promise<FieldIssue[]> {
  const [memory, persistence] = await Promise.all([redis.info('memory'), redis.info('persistence')]);
  const issues: FieldIssue[] = [];
  const policy = infoField(memory, 'maxmemory_policy');
  if (policy !== undefined && policy !== 'noeviction') {
    issues.push({
      field: 'redis maxmemory-policy',
      message: `is ${policy}; Mailroom needs noeviction (evicted jobs and locks are lost mail)`,
    });
  }
  if (infoField(persistence, 'aof_enabled') !== '1') {
    issues.push({
      field: 'redis appendonly',
      message: 'is no; Mailroom needs AOF persistence (appendonly yes) so queued mail survives a restart',
    });
  }
  return issues;
}

export async function assertRedisDurable(redis: Redis): Promise<void> {
  const issues = await checkRedisDurability(redis);
  if (issues.length > 0) throw new ConfigError(issues);
}
