import type { Mailbox } from '@mailroom/core';

/** Keys of merge variables as JSON, remembered: a list repeats the same few names on every row. */
const keyJson = new Map<string, string>();
const KEY_JSON_CACHE_MAX = 10_000;

function jsonOfKey(key: string): string {
  let json = keyJson.get(key);
  if (json === undefined) {
    if (keyJson.size >= KEY_JSON_CACHE_MAX) keyJson.clear();
    json = JSON.stringify(key);
    keyJson.set(key, json);
  }
  return json;
}

/** One recipient encoded for a chunk, not yet added (see CampaignChunkWriter.encode). */
export interface EncodedRecipient {
  readonly line: string;
  /**
   * Characters (UTF-16 code units) of `JSON.stringify(vars)`, computed piece by piece: its UTF-8 bytes are
   * at most 3 times this, so only a large object needs its exact size measured.
   */
  readonly varsJsonChars: number;
}

/**
 * Builds one chunk of a campaign's recipients in the compact form the materialise script reads
 * (campaign-scripts.ts): the variable names once, then one line per recipient.
 *
 * ```
 * "name"\t"n"                                   variable names as JSON, tab-separated
 * "ada@example.org"\t"Ada"\t"Ada"\t1            address, display name (empty if none), one value per name
 * "bob@example.org"\t\t"Bob"                    a missing value is an empty field; trailing ones are cut
 * ```
 *
 * JSON never contains a raw tab or newline, so the script splits on them without parsing JSON, and builds
 * each member's payload by joining the pieces. Values are encoded one by one as JSON.stringify encodes
 * them inside an object (`undefined` and functions are left out).
 */
export class CampaignChunkWriter {
  private readonly columns = new Map<string, number>();
  private readonly names: string[] = [];
  private body = '';
  private lines = 0;
  /** Reused for rows whose variables come in another order than the columns. */
  private readonly values: string[] = [];

  get count(): number {
    return this.lines;
  }

  /**
   * Encodes one recipient against this chunk's columns (a new variable name gets a column even if the
   * row is then refused: an empty column costs a tab on the rows after it, nothing else).
   */
  encode(to: Mailbox, vars: Readonly<Record<string, unknown>>): EncodedRecipient {
    const source = typeof (vars as { toJSON?: unknown }).toJSON === 'function' ? toPlain(vars) : vars;
    let line = JSON.stringify(to.address) + '\t' + (to.name === undefined ? '' : JSON.stringify(to.name));
    let chars = 2;
    let emitted = 0;
    let inOrder = true;
    const values = this.values;
    values.length = 0;
    for (const key of Object.keys(source)) {
      const json = JSON.stringify(source[key]);
      if (json === undefined) continue;
      let column = this.columns.get(key);
      if (column === undefined) {
        column = this.names.length;
        this.columns.set(key, column);
        this.names.push(jsonOfKey(key));
      }
      chars += (emitted > 0 ? 1 : 0) + jsonOfKey(key).length + 1 + json.length;
      // Most lists give every row the same variables in the same order: then values go in as they come.
      if (inOrder && column === emitted) line += '\t' + json;
      else {
        if (inOrder) {
          inOrder = false;
          // The values already on the line are in columns 0..emitted-1: take them back off.
          const head = line.split('\t');
          line = head[0] + '\t' + head[1];
          for (let c = 0; c < emitted; c += 1) values[c] = head[c + 2]!;
        }
        values[column] = json;
      }
      emitted += 1;
    }
    if (!inOrder) for (let c = 0; c < values.length; c += 1) line += '\t' + (values[c] ?? '');
    return { line, varsJsonChars: chars };
  }

  add(recipient: EncodedRecipient): void {
    this.body += (this.lines === 0 ? '' : '\n') + recipient.line;
    this.lines += 1;
  }

  /** The chunk's text, and a fresh start for the next chunk. */
  take(): string {
    const text = `${this.names.join('\t')}\n${this.body}`;
    this.columns.clear();
    this.names.length = 0;
    this.body = '';
    this.lines = 0;
    return text;
  }
}

function toPlain(vars: object): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(vars)) as unknown;
  return typeof plain === 'object' && plain !== null && !Array.isArray(plain)
    ? (plain as Record<string, unknown>)
    : {};
}
