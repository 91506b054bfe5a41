import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  ValidationError,
  addressDomain,
  controlCharacterProblem,
  parseMailbox,
  type FieldIssue,
} from '@mailroom/core';
import { mailroomKeys } from './keys.js';
import { LuaScript } from './lua-script.js';
import {
  ADD_SUPPRESSIONS,
  CHECK_SUPPRESSIONS,
  COMMIT_SUPPRESSION_IMPORT,
  READ_SUPPRESSION_BUCKETS,
  REMOVE_SUPPRESSIONS,
} from './suppression-scripts.js';

/**
 * Why an address is suppressed, weakest first. Adding an address that is already listed keeps the entry's
 * first time; its reason (and source) change only to a stronger one: a complaint (the recipient reported
 * spam) outranks an unsubscribe (the recipient's opt-out, lifted only by new consent), which outranks a hard
 * bounce (a fact about the mailbox that can change), which outranks a manual entry (no reason recorded).
 */
export const SUPPRESSION_REASONS = ['manual', 'hard_bounce', 'unsubscribe', 'complaint'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/**
 * The scope checked together with every sender scope: an address listed here is suppressed for every
 * sender. Meant for entries an operator decides on (legal requests, role addresses); hard bounces and
 * complaints go to the sender scope of the mail they answer, where a misclassified reply or one brand's
 * complaint cannot stop another brand's mail.
 */
export const GLOBAL_SUPPRESSION_SCOPE = '*';

/** Longest `source` (where an entry came from: `dsn`, `list:weekly`, `import:old-esp.csv`), in characters. */
export const MAX_SUPPRESSION_SOURCE_CHARS = 128;

/** Addresses per script call: a chunk of this many is checked in one round trip. */
export const SUPPRESSION_CHUNK = 1000;

/** A suppression list entry. */
export interface SuppressionEntry {
  /** The canonical address: lower-case, local part included (see {@link canonicalSuppressionAddress}). */
  readonly address: string;
  /** The scope the entry is in (a sender scope, or `*`). */
  readonly scope: string;
  readonly reason: SuppressionReason;
  /** When the address was first suppressed in this scope, ms since the epoch. */
  readonly at: number;
  readonly source?: string;
}

/** An entry to add. */
export interface SuppressionInput {
  readonly address: string;
  readonly reason: SuppressionReason;
  /** Where it came from, at most 128 characters without control characters. */
  readonly source?: string;
  /** When it happened, ms since the epoch (default: now). Kept only if the address is new to the scope. */
  readonly at?: number;
}

/** One page of a scope's list. */
export interface SuppressionPage {
  readonly entries: readonly SuppressionEntry[];
  /** Pass it back for the next page; absent once the list is exhausted. Opaque. */
  readonly cursor?: string;
}

/**
 * One row of an import: an address, or an object with `address` (or `email`) and optional `reason`,
 * `source`, `at` (ms or an ISO 8601 date). `parseError` is set by a reader for a row it could not parse.
 */
export type SuppressionImportRow =
  | string
  | {
      readonly address?: unknown;
      readonly email?: unknown;
      readonly reason?: unknown;
      readonly source?: unknown;
      readonly at?: unknown;
      readonly parseError?: string;
    };

export interface SuppressionImportOptions {
  /** Reason of rows that name none. */
  readonly reason: SuppressionReason;
  /** Source of rows that name none. */
  readonly source?: string;
  /**
   * Default false: one invalid row refuses the whole import (ValidationError naming each row, nothing
   * added). True: invalid rows are left out and reported in the result, the rest is added.
   */
  readonly skipInvalid?: boolean;
  /** Called after every chunk read and after every chunk added. */
  readonly onProgress?: (progress: { readonly read: number; readonly added: number }) => void;
}

/** An invalid import row: its 1-based number and the field at fault. */
export interface SuppressionRefusal {
  readonly row: number;
  readonly field: string;
  readonly message: string;
}

export interface SuppressionImportResult {
  readonly read: number;
  /** Addresses new to the scope. */
  readonly added: number;
  /** Addresses already listed whose reason was replaced by a stronger one. */
  readonly upgraded: number;
  readonly refused: number;
  /** The first refusals (at most 100). */
  readonly refusals: readonly SuppressionRefusal[];
}

const scripts = {
  add: new LuaScript('addSuppressions', ADD_SUPPRESSIONS),
  commit: new LuaScript('commitSuppressionImport', COMMIT_SUPPRESSION_IMPORT),
  remove: new LuaScript('removeSuppressions', REMOVE_SUPPRESSIONS),
  check: new LuaScript('checkSuppressions', CHECK_SUPPRESSIONS),
  read: new LuaScript('readSuppressionBuckets', READ_SUPPRESSION_BUCKETS),
};

const CODE_OF: Readonly<Record<SuppressionReason, string>> = {
  manual: 'm',
  hard_bounce: 'h',
  unsubscribe: 'u',
  complaint: 'c',
};
const REASON_OF: Readonly<Record<string, SuppressionReason>> = {
  m: 'manual',
  h: 'hard_bounce',
  u: 'unsubscribe',
  c: 'complaint',
};
const SCOPE = /^[a-z0-9._-]{1,253}$/;
const HASH_SPACE = 2 ** 32;
const DEFAULT_PAGE = 100;
/** Buckets read per script call while listing (each holds about 40 entries, at most a few hundred). */
const BUCKETS_PER_READ = 64;
/** Script calls per page at most: a page over a list thinned by removals may come back short. */
const READS_PER_PAGE = 16;
const IMPORT_STAGING_TTL_SECONDS = 3600;
const MAX_REFUSALS_REPORTED = 100;
const LATEST_AT = 8.64e15;

/** Whether `scope` is `*` or a sender scope: 1-253 of lower-case letters, digits, `.`, `_` and `-`. */
export function isSuppressionScope(scope: unknown): scope is string {
  return typeof scope === 'string' && (scope === GLOBAL_SUPPRESSION_SCOPE || SCOPE.test(scope));
}

/** The sender scope of mail from `fromAddress`: its domain, lower-case ASCII (`news.example.com`). */
export function suppressionScopeOf(fromAddress: string): string {
  return addressDomain(fromAddress);
}

/**
 * The form an address is stored and compared in: validated as a recipient is (one mailbox, `Name <a@b>`
 * allowed), then lower-cased whole. Local parts are case-sensitive in RFC 5321, but no mailbox provider
 * tells `Ann@` from `ann@`, and honouring an opt-out for both is the safe side. Nothing else is folded
 * (no dot or `+tag` removal): on most domains those are different mailboxes. Throws ValidationError
 * naming `field`.
 */
export function canonicalSuppressionAddress(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw new ValidationError([{ field, message: 'must be an address string' }]);
  }
  return parseMailbox(value, field).address.toLowerCase();
}

function scopeIssue(scope: unknown, field: string): FieldIssue | undefined {
  return isSuppressionScope(scope)
    ? undefined
    : { field, message: 'must be "*" or 1-253 of a-z, 0-9, ".", "_", "-" (a sender domain in lower case)' };
}

function assertScope(scope: unknown, field = 'scope'): asserts scope is string {
  const issue = scopeIssue(scope, field);
  if (issue) throw new ValidationError([issue]);
}

function issuesOf(err: unknown): readonly FieldIssue[] {
  if (err instanceof ValidationError) return err.issues;
  throw err;
}

function readAddress(value: unknown, field: string, issues: FieldIssue[]): string | undefined {
  try {
    return canonicalSuppressionAddress(value, field);
  } catch (err) {
    issues.push(...issuesOf(err));
    return undefined;
  }
}

function readReason(value: unknown, field: string, issues: FieldIssue[]): SuppressionReason | undefined {
  if (typeof value === 'string' && (SUPPRESSION_REASONS as readonly string[]).includes(value)) {
    return value as SuppressionReason;
  }
  issues.push({ field, message: `must be one of ${SUPPRESSION_REASONS.join(', ')}` });
  return undefined;
}

function readSource(value: unknown, field: string, issues: FieldIssue[]): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') {
    issues.push({ field, message: 'must be a string' });
    return undefined;
  }
  const control = controlCharacterProblem(value);
  if (control !== undefined) issues.push({ field, message: control });
  else if (value.length > MAX_SUPPRESSION_SOURCE_CHARS) {
    issues.push({ field, message: `is longer than ${MAX_SUPPRESSION_SOURCE_CHARS} characters` });
  } else return value;
  return undefined;
}

function readAt(value: unknown, field: string, issues: FieldIssue[]): number | undefined {
  let at = Number.NaN;
  if (typeof value === 'number') at = value;
  else if (typeof value === 'string') at = /^\d+$/.test(value.trim()) ? Number(value) : Date.parse(value);
  if (Number.isSafeInteger(at) && at >= 0 && at <= LATEST_AT) return at;
  issues.push({ field, message: 'must be a time: ms since the epoch or an ISO 8601 date' });
  return undefined;
}

/** The stored value: reason code, time in base 36, then a space and the source if there is one. */
function encodeValue(reason: SuppressionReason, at: number, source: string | undefined): string {
  return `${CODE_OF[reason]}${at.toString(36)}${source === undefined ? '' : ` ${source}`}`;
}

function decodeValue(address: string, scope: string, value: string): SuppressionEntry {
  const space = value.indexOf(' ');
  const at = parseInt(value.slice(1, space < 0 ? undefined : space), 36);
  const source = space < 0 ? undefined : value.slice(space + 1);
  return {
    address,
    scope,
    reason: REASON_OF[value.charAt(0)] ?? 'manual',
    at: Number.isNaN(at) ? 0 : at,
    ...(source === undefined ? {} : { source }),
  };
}

const rank = (reason: SuppressionReason) => SUPPRESSION_REASONS.indexOf(reason);

/** Of an entry in the sender scope and one in `*`, the one with the stronger reason (the sender's on a tie). */
function stronger(own?: SuppressionEntry, global?: SuppressionEntry): SuppressionEntry | undefined {
  if (own === undefined || global === undefined) return own ?? global;
  return rank(global.reason) > rank(own.reason) ? global : own;
}

/** The first 32 bits of SHA-1 of the address: the order of listing, the same hash the scripts bucket by. */
function hash32(address: string): number {
  return createHash('sha1').update(address).digest().readUInt32BE(0);
}

interface Position {
  readonly hash: number;
  readonly address: string;
}

const after = (a: Position, b: Position) => a.hash > b.hash || (a.hash === b.hash && a.address > b.address);

function encodeCursor(position: Position): string {
  return Buffer.from(`${position.hash.toString(16).padStart(8, '0')}${position.address}`).toString(
    'base64url',
  );
}

function decodeCursor(cursor: unknown): Position {
  const text = typeof cursor === 'string' ? Buffer.from(cursor, 'base64url').toString() : '';
  if (!/^[0-9a-f]{8}/.test(text)) {
    throw new ValidationError([{ field: 'cursor', message: 'is not a cursor' }]);
  }
  return { hash: parseInt(text.slice(0, 8), 16), address: text.slice(8) };
}

/**
 * The suppression list: per scope, the addresses Mailroom must not send to, with why and since when.
 * Checked when a message is accepted (the client) and again right before it is sent (the worker).
 *
 * - Scopes: a sender scope is the From address's domain (`suppressionScopeOf`), so brands sending from
 *   different domains keep separate lists; `*` (GLOBAL_SUPPRESSION_SCOPE) is checked together with every
 *   sender scope.
 * - Addresses: compared and stored in one canonical form (`canonicalSuppressionAddress`): domain and local
 *   part lower-cased, nothing else folded. Entries report that form.
 * - Reasons: an address listed again keeps its first time; its reason changes only to a stronger one
 *   (SUPPRESSION_REASONS, weakest first).
 * - Bad input (an address, reason, source, time or scope) is refused with ValidationError naming every bad
 *   field (`entries[3].address`, `row 7.reason`) before anything is written.
 *
 * Storage: one small Redis hash per bucket of a linear-hashing table per scope (suppression-scripts.ts), so
 * each bucket stays a listpack: about 55 bytes per entry at 100,000 entries and 53 at a million, against
 * about 98 in one plain hash (bench/suppression-memory.mjs).
 */
export class SuppressionStore {
  private readonly keys: ReturnType<typeof mailroomKeys>;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {
    this.keys = mailroomKeys(prefix);
  }

  /**
   * Adds entries to `scope`. Validates them all first: one bad entry refuses the call, naming
   * `entries[i].field`, and nothing is written. Returns how many addresses were new to the scope.
   * Atomic per chunk of 1000 entries.
   */
  async add(scope: string, entries: readonly SuppressionInput[]): Promise<number> {
    assertScope(scope);
    const now = Date.now();
    const issues: FieldIssue[] = [];
    const flat: string[] = [];
    entries.forEach((entry, i) => {
      const field = `entries[${i}]`;
      if (typeof entry !== 'object' || entry === null) {
        issues.push({ field, message: 'must be an object { address, reason, source?, at? }' });
        return;
      }
      const encoded = this.encode(entry, field, {}, now, issues);
      if (encoded) flat.push(encoded.address, encoded.value);
    });
    if (issues.length > 0) throw new ValidationError(issues);
    let added = 0;
    for (let start = 0; start < flat.length; start += 2 * SUPPRESSION_CHUNK) {
      const reply = (await scripts.add.run(
        this.redis,
        [this.keys.suppressions(scope)],
        flat.slice(start, start + 2 * SUPPRESSION_CHUNK),
      )) as number[];
      added += Number(reply[0]);
    }
    return added;
  }

  /** Removes addresses from `scope` (only that scope). Returns how many were listed. */
  async remove(scope: string, addresses: readonly string[]): Promise<number> {
    assertScope(scope);
    const canonical = this.canonicalAll(addresses, 'addresses');
    let removed = 0;
    for (let start = 0; start < canonical.length; start += SUPPRESSION_CHUNK) {
      removed += Number(
        await scripts.remove.run(
          this.redis,
          [this.keys.suppressions(scope)],
          canonical.slice(start, start + SUPPRESSION_CHUNK),
        ),
      );
    }
    return removed;
  }

  /**
   * Which of `addresses` are suppressed for `scope`: listed in it or in `*`. The map is keyed by the
   * addresses exactly as passed; when both scopes list one, the entry with the stronger reason is returned
   * (the sender scope's on a tie). One round trip per 1000 addresses.
   */
  async check(scope: string, addresses: readonly string[]): Promise<Map<string, SuppressionEntry>> {
    assertScope(scope);
    const canonical = this.canonicalAll(addresses, 'addresses');
    const found = await this.lookup(canonical.map((address) => ({ scope, address })));
    const out = new Map<string, SuppressionEntry>();
    found.forEach((entry, i) => {
      if (entry) out.set(addresses[i]!, entry);
    });
    return out;
  }

  /**
   * Like `check`, for recipients of different senders in one call: for each `{ scope, address }`, the entry
   * that suppresses it (its scope or `*`), or undefined. One round trip per 1000 items.
   */
  async checkEach(
    items: readonly { readonly scope: string; readonly address: string }[],
  ): Promise<(SuppressionEntry | undefined)[]> {
    const issues: FieldIssue[] = [];
    const canonical = items.map((item, i) => {
      const scopeProblem = scopeIssue(item.scope, `[${i}].scope`);
      if (scopeProblem) issues.push(scopeProblem);
      return { scope: item.scope, address: readAddress(item.address, `[${i}].address`, issues) ?? '' };
    });
    if (issues.length > 0) throw new ValidationError(issues);
    return this.lookup(canonical);
  }

  /** checkEach for validated scopes and canonical addresses. */
  private async lookup(
    items: readonly { readonly scope: string; readonly address: string }[],
  ): Promise<(SuppressionEntry | undefined)[]> {
    const out: (SuppressionEntry | undefined)[] = [];
    for (let start = 0; start < items.length; start += SUPPRESSION_CHUNK) {
      const chunk = items.slice(start, start + SUPPRESSION_CHUNK);
      const scopes = [...new Set([...chunk.map((item) => item.scope), GLOBAL_SUPPRESSION_SCOPE])];
      const index = new Map(scopes.map((scope, k) => [scope, k + 1]));
      const args: (string | number)[] = [index.get(GLOBAL_SUPPRESSION_SCOPE)!];
      for (const item of chunk) args.push(item.address, index.get(item.scope)!);
      const reply = (await scripts.check.run(
        this.redis,
        scopes.map((scope) => this.keys.suppressions(scope)),
        args,
      )) as (string | null)[];
      chunk.forEach(({ scope, address }, i) => {
        const own = reply[2 * i];
        const global = reply[2 * i + 1];
        const mine = own ? decodeValue(address, scope, own) : undefined;
        const everywhere = global ? decodeValue(address, GLOBAL_SUPPRESSION_SCOPE, global) : undefined;
        out.push(stronger(mine, everywhere));
      });
    }
    return out;
  }

  /** The entry for `address` in `scope` itself (`*` is not consulted), or undefined. */
  async get(scope: string, address: string): Promise<SuppressionEntry | undefined> {
    assertScope(scope);
    const canonical = canonicalSuppressionAddress(address, 'address');
    const reply = (await scripts.check.run(
      this.redis,
      [this.keys.suppressions(scope)],
      [0, canonical, 1],
    )) as (string | null)[];
    return reply[0] ? decodeValue(canonical, scope, reply[0]) : undefined;
  }

  /**
   * One page of the scope's entries, in a fixed order (by a hash of the address). An entry listed for the
   * whole iteration is returned exactly once, however the list changes meanwhile; one added or removed
   * meanwhile may or may not appear. A page may hold fewer than `count` entries (default 100, at most
   * 1000) before the end; only a missing `cursor` means the end.
   */
  async list(scope: string, options: { cursor?: string; count?: number } = {}): Promise<SuppressionPage> {
    assertScope(scope);
    const count = options.count ?? DEFAULT_PAGE;
    if (!Number.isInteger(count) || count < 1 || count > SUPPRESSION_CHUNK) {
      throw new ValidationError([
        { field: 'count', message: `must be an integer from 1 to ${SUPPRESSION_CHUNK}` },
      ]);
    }
    let from: Position =
      options.cursor === undefined ? { hash: 0, address: '' } : decodeCursor(options.cursor);
    const entries: SuppressionEntry[] = [];
    for (let reads = 0; reads < READS_PER_PAGE; reads++) {
      const reply = (await scripts.read.run(
        this.redis,
        [this.keys.suppressions(scope)],
        [from.hash, count - entries.length, BUCKETS_PER_READ],
      )) as unknown[];
      const next = Number(reply[0]);
      const flat = reply.slice(1) as string[];
      const found: (Position & { value: string })[] = [];
      for (let j = 0; j + 1 < flat.length; j += 2) {
        const position = { hash: hash32(flat[j]!), address: flat[j]! };
        if (after(position, from)) found.push({ ...position, value: flat[j + 1]! });
      }
      found.sort((a, b) => a.hash - b.hash || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
      const room = count - entries.length;
      for (const f of found.slice(0, room)) entries.push(decodeValue(f.address, scope, f.value));
      if (found.length > room) {
        const last = found[room - 1]!;
        return { entries, cursor: encodeCursor(last) };
      }
      if (next >= HASH_SPACE) return { entries };
      from = { hash: next, address: '' };
      if (entries.length === count) break;
    }
    return { entries, cursor: encodeCursor(from) };
  }

  /** How many addresses the scope lists (exact; `*` not included). */
  async count(scope: string): Promise<number> {
    assertScope(scope);
    return Number((await this.redis.hget(this.keys.suppressions(scope), 'n')) ?? 0);
  }

  /** Every entry of the scope, page by page (see `list` for what a changing list yields). */
  async *export(scope: string): AsyncGenerator<SuppressionEntry> {
    let cursor: string | undefined;
    do {
      const page = await this.list(scope, {
        count: SUPPRESSION_CHUNK,
        ...(cursor === undefined ? {} : { cursor }),
      });
      yield* page.entries;
      cursor = page.cursor;
    } while (cursor !== undefined);
  }

  /**
   * Adds a stream of rows (an array, a generator, a file reader) to `scope`, never holding it in memory:
   * rows are validated and staged in Redis in chunks of 1000, then moved into the list in chunks of 1000.
   * Unless `skipInvalid`, one invalid row refuses the import (ValidationError naming `row N.field`, at most
   * 100 rows named) and the list is left untouched.
   */
  async import(
    scope: string,
    rows: AsyncIterable<SuppressionImportRow> | Iterable<SuppressionImportRow>,
    options: SuppressionImportOptions,
  ): Promise<SuppressionImportResult> {
    assertScope(scope);
    const defaults: FieldIssue[] = [];
    readReason(options.reason, 'reason', defaults);
    readSource(options.source, 'source', defaults);
    if (defaults.length > 0) throw new ValidationError(defaults);
    const meta = this.keys.suppressions(scope);
    const staging = `${meta}:import:${randomBytes(8).toString('hex')}`;
    const now = Date.now();
    const refusals: SuppressionRefusal[] = [];
    let read = 0;
    let refused = 0;
    let staged = 0;
    let buffer: string[] = [];
    const flush = async () => {
      if (buffer.length === 0) return;
      await this.redis
        .multi()
        .rpush(staging, ...buffer)
        .expire(staging, IMPORT_STAGING_TTL_SECONDS)
        .exec();
      staged += buffer.length;
      buffer = [];
      options.onProgress?.({ read, added: 0 });
    };
    try {
      for await (const row of rows) {
        read += 1;
        const issues: FieldIssue[] = [];
        const encoded = this.encodeRow(row, options, now, issues);
        if (encoded) {
          // Once a row is refused an all-or-nothing import only reads on, to name the other bad rows.
          if (refused === 0 || options.skipInvalid) buffer.push(`${encoded.address} ${encoded.value}`);
        } else {
          refused += 1;
          for (const issue of issues) {
            if (refusals.length < MAX_REFUSALS_REPORTED) refusals.push({ row: read, ...issue });
          }
        }
        if (buffer.length >= SUPPRESSION_CHUNK) await flush();
      }
      if (refused > 0 && !options.skipInvalid) {
        const named = refusals.map((r) => ({ field: `row ${r.row}.${r.field}`, message: r.message }));
        const unnamed = refused - new Set(refusals.map((r) => r.row)).size;
        if (unnamed > 0) named.push({ field: '(rows)', message: `${unnamed} more invalid row(s)` });
        throw new ValidationError(named);
      }
      await flush();
      let added = 0;
      let upgraded = 0;
      // Each call moves up to a chunk; the bound only guards against a staging list that keeps growing.
      for (let calls = 0; calls <= Math.ceil(staged / SUPPRESSION_CHUNK); calls++) {
        const [a, u, left] = (await scripts.commit.run(
          this.redis,
          [meta, staging],
          [SUPPRESSION_CHUNK],
        )) as number[];
        added += Number(a);
        upgraded += Number(u);
        options.onProgress?.({ read, added });
        if (Number(left) === 0) break;
      }
      return { read, added, upgraded, refused, refusals };
    } finally {
      await this.redis.del(staging);
    }
  }

  private canonicalAll(addresses: readonly string[], field: string): string[] {
    const issues: FieldIssue[] = [];
    const out = addresses.map((address, i) => readAddress(address, `${field}[${i}]`, issues) ?? '');
    if (issues.length > 0) throw new ValidationError(issues);
    return out;
  }

  private encode(
    entry: {
      readonly address?: unknown;
      readonly reason?: unknown;
      readonly source?: unknown;
      readonly at?: unknown;
    },
    field: string,
    defaults: { readonly reason?: SuppressionReason; readonly source?: string },
    now: number,
    issues: FieldIssue[],
  ): { address: string; value: string } | undefined {
    const before = issues.length;
    const name = (part: string) => (field === '' ? part : `${field}.${part}`);
    const address = readAddress(entry.address, name('address'), issues);
    const reason = readReason(entry.reason ?? defaults.reason, name('reason'), issues);
    const source = readSource(entry.source ?? defaults.source, name('source'), issues);
    const at = entry.at === undefined || entry.at === '' ? now : readAt(entry.at, name('at'), issues);
    if (issues.length > before || address === undefined || reason === undefined || at === undefined) {
      return undefined;
    }
    return { address, value: encodeValue(reason, at, source) };
  }

  /** One import row, its issues named relative to the row (`address`, `reason`, ...). */
  private encodeRow(
    row: SuppressionImportRow,
    options: SuppressionImportOptions,
    now: number,
    issues: FieldIssue[],
  ): { address: string; value: string } | undefined {
    if (typeof row === 'string') return this.encode({ address: row }, '', options, now, issues);
    if (typeof row !== 'object' || row === null) {
      issues.push({
        field: '(row)',
        message: 'must be an address or an object { address, reason?, source?, at? }',
      });
      return undefined;
    }
    if (typeof row.parseError === 'string') {
      issues.push({ field: '(row)', message: row.parseError });
      return undefined;
    }
    const address = row.address ?? row.email;
    return this.encode({ ...row, address }, '', options, now, issues);
  }
}
