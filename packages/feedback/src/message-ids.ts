import { isMessageId } from '@mailroom/core';

/** `<id-left@id-right>`; every repetition bounded, so a long header costs linear time. */
const BRACKETED = /<([^<>\s@]{1,250}@[^<>\s@]{1,250})>/g;
const BARE = /^([^<>\s@]{1,250}@[^<>\s@]{1,250})$/;
/** More ids than a References field of a real thread has; the rest are not read. */
const MAX_IDS = 100;

/**
 * Every Message-ID in a `Message-ID`, `In-Reply-To` or `References` value, each with its angle brackets,
 * at most MAX_IDS of them. A single bare `id@domain` (RFC 5965's own example drops the brackets) is
 * accepted and bracketed.
 */
export function messageIds(value: string | undefined): string[] {
  if (value === undefined) return [];
  const ids: string[] = [];
  for (const match of value.matchAll(BRACKETED)) {
    ids.push(`<${match[1] ?? ''}>`);
    if (ids.length >= MAX_IDS) break;
  }
  if (ids.length > 0) return ids;
  const bare = BARE.exec(value.trim());
  return bare === null ? [] : [`<${bare[1] ?? ''}>`];
}

/**
 * The Mailroom message id of a Message-ID written by `messageIdHeader` (`<01j9zq4kx2m7c3t8w5v6r0s1ab@
 * example.com>`), or undefined when its left part is not exactly one. Matched as written, case included:
 * Mailroom writes ids in lower case and MTAs do not change Message-IDs, whereas upper-case ULIDs are the
 * usual form of other systems' ids, which must not be taken for ours.
 */
export function mailroomIdOf(messageId: string | undefined): string | undefined {
  if (messageId === undefined) return undefined;
  const inner = messageId.startsWith('<') && messageId.endsWith('>') ? messageId.slice(1, -1) : messageId;
  const at = inner.lastIndexOf('@');
  if (at < 0) return undefined;
  const left = inner.slice(0, at);
  return isMessageId(left) ? left : undefined;
}
