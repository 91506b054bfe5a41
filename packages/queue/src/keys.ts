/**
 * Every key Mailroom writes, and every key BullMQ writes for Mailroom's queues, starts with one prefix that
 * holds a Redis Cluster hash tag (`{...}`), so each Lua script touches a single slot.
 */
export const DEFAULT_PREFIX = '{mailroom}';

/** The queue of single messages (transactional mail and messages sent one by one). */
export const MAIL_QUEUE = 'mail';

/** Name of the BullMQ job that carries one message. */
export const SEND_JOB = 'send';

/** Throws unless the prefix carries a non-empty hash tag. */
export function assertPrefix(prefix: string): void {
  if (!/\{[^{}]+\}/.test(prefix)) {
    throw new Error(`queue prefix "${prefix}" must contain a Redis Cluster hash tag such as {mailroom}`);
  }
}

/** Redis keys owned by Mailroom (BullMQ's own keys are derived by BullMQ from the same prefix). */
export function mailroomKeys(prefix: string) {
  return {
    /** A content-addressed body part or attachment: `<prefix>:content:<sha256>`. */
    content: (sha256: string) => `${prefix}:content:${sha256}`,
  };
}
