import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type { CampaignRecipientInput } from './campaign-upload.js';

/** Columns that hold the address, in order of preference; every column is also a merge variable. */
const ADDRESS_COLUMNS = ['email', 'to', 'address'];

/**
 * Recipients from a CSV stream with a header row (csv-parse, streamed: the file is never loaded whole). The
 * address is the `email` (or `to`, `address`) column, `name` gives the display name, and every column is a
 * merge variable. A row that cannot be parsed is yielded as a refusal, so the upload names its row.
 */
export async function* recipientsFromCsv(input: Readable): AsyncGenerator<CampaignRecipientInput> {
  const skipped: string[] = [];
  const parser = input.pipe(
    parse({
      columns: true,
      bom: true,
      skip_empty_lines: true,
      trim: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        if (err) skipped.push(`CSV: ${err.message}`);
      },
    }),
  );
  for await (const row of parser as AsyncIterable<Record<string, string>>) {
    for (const message of skipped.splice(0)) yield { to: undefined, parseError: message };
    yield fromRow(row);
  }
  for (const message of skipped.splice(0)) yield { to: undefined, parseError: message };
}

/**
 * Recipients from a JSON Lines stream, one object per line: `{ "to": ..., "vars": {...} }`, or a flat object
 * with an `email` field whose fields are the merge variables. A line that is not JSON is a refusal naming it.
 */
export async function* recipientsFromJsonl(input: Readable): AsyncGenerator<CampaignRecipientInput> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      yield { to: undefined, parseError: `not JSON: ${(err as Error).message}` };
      continue;
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const obj = value as Record<string, unknown>;
      yield 'to' in obj && !('email' in obj) ? { to: obj.to, vars: obj.vars } : fromRow(obj);
    } else {
      yield { to: value };
    }
  }
}

function fromRow(row: Record<string, unknown>): CampaignRecipientInput {
  const column = ADDRESS_COLUMNS.find((c) => typeof row[c] === 'string' && row[c] !== '');
  const address = column === undefined ? undefined : row[column];
  const name = typeof row.name === 'string' && row.name !== '' ? row.name : undefined;
  return { to: name === undefined ? address : { name, address }, vars: row };
}
