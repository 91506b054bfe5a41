import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import {
  MailroomClient,
  SUPPRESSION_REASONS,
  recipientsFromCsv,
  type SuppressionEntry,
  type SuppressionImportRow,
  type SuppressionReason,
} from '@mailroom/client';
import { ValidationError } from '@mailroom/core';
import type { RedisTarget } from '@mailroom/queue';

export const SUPPRESSION_ACTIONS = ['list', 'add', 'remove', 'check', 'count', 'import', 'export'] as const;
export type SuppressionAction = (typeof SUPPRESSION_ACTIONS)[number];

/** File formats of import and export. */
export type SuppressionFileFormat = 'csv' | 'jsonl' | 'lines';

export interface SuppressionFlags {
  /** Redis: a URL, or a cluster or Sentinel spec (from MAILROOM_REDIS_*). */
  redisUrl: RedisTarget;
  prefix?: string;
  /** A sender scope (the From domain) or `*`. */
  scope: string;
  /** add and import (rows without a reason): default `manual`. */
  reason?: string;
  source?: string;
  /** list: page size and where to continue. */
  count?: string;
  cursor?: string;
  /** import/export: default from the file name (.csv, .jsonl/.ndjson, anything else one address a line). */
  format?: string;
  /** import: leave invalid rows out (reported) instead of refusing the file. */
  skipInvalid?: boolean;
}

const FORMATS: readonly SuppressionFileFormat[] = ['csv', 'jsonl', 'lines'];
const CSV_COLUMNS = ['address', 'scope', 'reason', 'at', 'source'] as const;

/** A problem with the command line itself, printed as `--flag: reason`. */
class SuppressionUsageError extends Error {
  override readonly name = 'SuppressionUsageError';
}

function formatOf(flags: SuppressionFlags, path: string): SuppressionFileFormat {
  if (flags.format !== undefined) {
    if (!(FORMATS as readonly string[]).includes(flags.format)) {
      throw new SuppressionUsageError(
        `--format: must be one of ${FORMATS.join(', ')} (got "${flags.format}")`,
      );
    }
    return flags.format as SuppressionFileFormat;
  }
  if (/\.csv$/i.test(path)) return 'csv';
  if (/\.(jsonl|ndjson)$/i.test(path)) return 'jsonl';
  return 'lines';
}

const blankToUndefined = (value: unknown) => (value === '' || value === null ? undefined : value);

/** CSV with a header row: `address` (or `email`, `to`), optional `reason`, `source`, `at`; other columns ignored. */
async function* rowsFromCsv(input: Readable): AsyncGenerator<SuppressionImportRow> {
  for await (const row of recipientsFromCsv(input)) {
    if (row.parseError !== undefined) {
      yield { parseError: row.parseError };
      continue;
    }
    const vars = (row.vars ?? {}) as Record<string, unknown>;
    yield {
      address: blankToUndefined(vars.address ?? vars.email ?? vars.to),
      reason: blankToUndefined(vars.reason),
      source: blankToUndefined(vars.source),
      at: blankToUndefined(vars.at),
    };
  }
}

/** JSON Lines: each line an address string or an object { address, reason?, source?, at? }. */
async function* rowsFromJsonl(input: Readable): AsyncGenerator<SuppressionImportRow> {
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      yield { parseError: `not JSON: ${(err as Error).message}` };
      continue;
    }
    if (typeof value === 'string') yield value;
    else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      yield value;
    } else yield { parseError: 'must be an address string or an object' };
  }
}

/** One address a line; blank lines and lines starting with `#` are skipped. */
async function* rowsFromLines(input: Readable): AsyncGenerator<SuppressionImportRow> {
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    const text = line.trim();
    if (text !== '' && !text.startsWith('#')) yield text;
  }
}

function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function exportLine(entry: SuppressionEntry, format: SuppressionFileFormat): string {
  const at = new Date(entry.at).toISOString();
  if (format === 'lines') return `${entry.address}\n`;
  if (format === 'jsonl') return `${JSON.stringify({ ...entry, at })}\n`;
  const row = { ...entry, at, source: entry.source ?? '' };
  return `${CSV_COLUMNS.map((c) => csvCell(row[c])).join(',')}\n`;
}

async function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain');
}

function readReason(flags: SuppressionFlags): SuppressionReason {
  const reason = flags.reason ?? 'manual';
  if (!(SUPPRESSION_REASONS as readonly string[]).includes(reason)) {
    throw new SuppressionUsageError(
      `--reason: must be one of ${SUPPRESSION_REASONS.join(', ')} (got "${reason}")`,
    );
  }
  return reason as SuppressionReason;
}

/** A readable file (checked first: a stream piped into the CSV parser would not pass its error on). */
async function openInput(path: string): Promise<Readable> {
  if (path === '-') return process.stdin;
  let isFile = false;
  try {
    isFile = (await stat(path)).isFile();
  } catch (e) {
    throw new SuppressionUsageError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!isFile) throw new SuppressionUsageError(`${path}: not a file`);
  return createReadStream(path);
}

function readCount(flags: SuppressionFlags): number | undefined {
  if (flags.count === undefined) return undefined;
  const n = Number(flags.count);
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw new SuppressionUsageError(`--count: must be an integer from 1 to 1000 (got "${flags.count}")`);
  }
  return n;
}

/**
 * `mailroom suppression <action>`: list (one page as JSON), add, remove, check, count (JSON results),
 * import <file> and export <file> (CSV, JSON Lines or one address a line, streamed; `-` for stdin/stdout).
 * Exit 2 for bad input, each field (or file row) named on stderr.
 */
export async function suppressionCommand(
  action: SuppressionAction,
  args: readonly string[],
  flags: SuppressionFlags,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const client = new MailroomClient({
    redis: flags.redisUrl,
    ...(flags.prefix === undefined ? {} : { prefix: flags.prefix }),
  });
  const print = (value: unknown) => write(out, `${JSON.stringify(value)}\n`);
  try {
    const { suppressions } = client;
    const scope = flags.scope;
    switch (action) {
      case 'list': {
        const count = readCount(flags);
        const page = await suppressions.list(scope, {
          ...(count === undefined ? {} : { count }),
          ...(flags.cursor === undefined ? {} : { cursor: flags.cursor }),
        });
        await print(page);
        break;
      }
      case 'add': {
        const entries = args.map((address) => ({
          address,
          reason: readReason(flags),
          ...(flags.source === undefined ? {} : { source: flags.source }),
        }));
        await print({ added: await suppressions.add(scope, entries) });
        break;
      }
      case 'remove':
        await print({ removed: await suppressions.remove(scope, args) });
        break;
      case 'check': {
        const found = await suppressions.check(scope, args);
        await print({ checked: args.length, suppressed: [...found.values()] });
        break;
      }
      case 'count':
        await print({ scope, count: await suppressions.count(scope) });
        break;
      case 'import': {
        const path = args[0] ?? '-';
        const format = formatOf(flags, path);
        const reason = readReason(flags);
        const input = await openInput(path);
        const rows =
          format === 'csv'
            ? rowsFromCsv(input)
            : format === 'jsonl'
              ? rowsFromJsonl(input)
              : rowsFromLines(input);
        const result = await suppressions.import(scope, rows, {
          reason,
          ...(flags.source === undefined ? {} : { source: flags.source }),
          ...(flags.skipInvalid === true ? { skipInvalid: true } : {}),
        });
        for (const r of result.refusals) err.write(`row ${r.row}: ${r.field}: ${r.message}\n`);
        const { refusals: _refusals, ...counts } = result;
        await print(counts);
        break;
      }
      case 'export': {
        const path = args[0] ?? '-';
        const format = formatOf(flags, path);
        let exported = 0;
        const lines = async function* () {
          if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\n`;
          for await (const entry of suppressions.export(scope)) {
            exported += 1;
            yield exportLine(entry, format);
          }
        };
        if (path === '-') {
          for await (const line of lines()) await write(out, line);
        } else {
          await pipeline(Readable.from(lines()), createWriteStream(path));
          await print({ exported, file: path });
        }
        break;
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof SuppressionUsageError) {
      err.write(`${e.message}\n`);
      return 2;
    }
    if (e instanceof ValidationError) {
      for (const issue of e.issues) err.write(`${issue.field}: ${issue.message}\n`);
      return 2;
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (action === 'export' && (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR')) {
      err.write(`${args[0]}: cannot write (${code})\n`);
      return 2;
    }
    throw e;
  } finally {
    await client.close();
  }
}

/** Registers `mailroom suppression list|add|remove|check|count|import|export` on the program. */
export function registerSuppressionCommand(program: Command, defaultRedisUrl: () => RedisTarget): void {
  const suppression = program
    .command('suppression')
    .description('the suppression list: addresses Mailroom never sends to, per sender scope');
  const define = (name: string, description: string) =>
    suppression
      .command(name)
      .description(description)
      .requiredOption(
        '--scope <scope>',
        'sender scope: the From domain (news.example.com), or "*" for every sender',
      )
      .option(
        '--redis-url <url>',
        'Redis URL (default: MAILROOM_REDIS_URL, REDIS_URL or redis://127.0.0.1:6379)',
      )
      .option('--prefix <prefix>', 'queue key prefix (default {mailroom})');
  type Options = Omit<SuppressionFlags, 'redisUrl'> & { redisUrl?: string };
  const run = async (action: SuppressionAction, args: readonly string[], opts: Options): Promise<void> => {
    process.exitCode = await suppressionCommand(
      action,
      args,
      { ...opts, redisUrl: opts.redisUrl ?? defaultRedisUrl() },
      process.stdout,
      process.stderr,
    );
  };
  define('list', 'print one page of the scope as JSON ({ entries, cursor })')
    .option('--count <n>', 'entries per page, 1-1000 (default 100)')
    .option('--cursor <cursor>', 'continue after the page that returned this cursor')
    .action((opts: Options) => run('list', [], opts));
  define('add', 'add addresses (prints { added })')
    .argument('<address...>')
    .option('--reason <reason>', 'manual | hard_bounce | unsubscribe | complaint (default manual)')
    .option('--source <text>', 'where the entry comes from')
    .action((addresses: string[], opts: Options) => run('add', addresses, opts));
  define('remove', 'remove addresses from the scope (prints { removed })')
    .argument('<address...>')
    .action((addresses: string[], opts: Options) => run('remove', addresses, opts));
  define('check', 'print which addresses are suppressed for the scope (listed in it or in "*")')
    .argument('<address...>')
    .action((addresses: string[], opts: Options) => run('check', addresses, opts));
  define('count', 'print how many addresses the scope lists').action((opts: Options) =>
    run('count', [], opts),
  );
  define('import', 'add a file of addresses, streamed; one bad row refuses the file unless --skip-invalid')
    .argument(
      '[file]',
      'CSV with a header row (address, reason, source, at), .jsonl, or one address a line; - for stdin',
      '-',
    )
    .option('--format <format>', 'csv | jsonl | lines (default: from the file name)')
    .option('--reason <reason>', 'reason of rows without one (default manual)')
    .option('--source <text>', 'source of rows without one')
    .option('--skip-invalid', 'leave invalid rows out (each reported) instead of refusing the file', false)
    .action((file: string, opts: Options) => run('import', [file], opts));
  define('export', 'write every entry of the scope, streamed (CSV, .jsonl, or one address a line)')
    .argument('[file]', 'output file; - for stdout', '-')
    .option('--format <format>', 'csv | jsonl | lines (default: from the file name)')
    .action((file: string, opts: Options) => run('export', [file], opts));
}
