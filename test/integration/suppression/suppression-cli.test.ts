import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { suppressionCommand, type SuppressionAction, type SuppressionFlags } from '@mailroom/cli';
import { assertNoRedisClients, assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { startRedis, type RedisServer } from '../../harness/redis.js';

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

describe('mailroom suppression (CLI)', () => {
  let redis: RedisServer;
  let dir: string;
  let baseline: string[];

  before(async () => {
    baseline = snapshotResources();
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'mailroom-suppression-cli-'));
  });

  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await assertNoRedisClients(redis);
    await redis.stop();
    await assertNoResourceLeaks(baseline);
  });

  async function run(
    action: SuppressionAction,
    args: string[],
    flags: Partial<SuppressionFlags> & { scope: string },
  ): Promise<{ code: number; out: string; err: string }> {
    const out = capture();
    const err = capture();
    const code = await suppressionCommand(
      action,
      args,
      { redisUrl: redis.url, ...flags },
      out.stream,
      err.stream,
    );
    return { code, out: out.text(), err: err.text() };
  }

  const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

  it('add, check, count, remove, list', async () => {
    const scope = 'cli-basic.example';
    let r = await run('add', ['Ann@Example.test', 'bo@example.test'], {
      scope,
      reason: 'unsubscribe',
      source: 'desk',
    });
    assert.deepEqual([r.code, json(r.out)], [0, { added: 2 }]);
    r = await run('check', ['ann@example.test', 'cy@example.test'], { scope });
    assert.equal(r.code, 0);
    const checked = json(r.out) as { checked: number; suppressed: { address: string; reason: string }[] };
    assert.equal(checked.checked, 2);
    assert.deepEqual(
      checked.suppressed.map((e) => [e.address, e.reason]),
      [['ann@example.test', 'unsubscribe']],
    );
    r = await run('count', [], { scope });
    assert.deepEqual(json(r.out), { scope, count: 2 });
    r = await run('list', [], { scope, count: '1' });
    const page = json(r.out) as { entries: unknown[]; cursor?: string };
    assert.equal(page.entries.length, 1);
    assert.ok(typeof page.cursor === 'string');
    r = await run('list', [], { scope, count: '1', cursor: page.cursor });
    assert.equal((json(r.out) as { entries: unknown[] }).entries.length, 1);
    r = await run('remove', ['ANN@example.test'], { scope });
    assert.deepEqual(json(r.out), { removed: 1 });
  });

  it('imports CSV, JSON Lines and plain lists, and exports them back (streamed files)', async () => {
    const scope = 'cli-files.example';
    const csv = join(dir, 'in.csv');
    writeFileSync(
      csv,
      'email,reason,source,at,name\n' +
        'a1@example.test,complaint,arf,2024-01-02T03:04:05.678Z,"Doe, Jane"\n' +
        'a2@example.test,,,,\n' +
        '"""q""@example.test",hard_bounce,dsn,,\n',
    );
    let r = await run('import', [csv], { scope, reason: 'unsubscribe' });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(json(r.out), { read: 3, added: 3, upgraded: 0, refused: 0 });

    const jsonl = join(dir, 'in.jsonl');
    writeFileSync(
      jsonl,
      '"b1@example.test"\n\n{"address":"b2@example.test","reason":"manual","source":"ops"}\n',
    );
    r = await run('import', [jsonl], { scope, reason: 'unsubscribe' });
    assert.deepEqual(json(r.out), { read: 2, added: 2, upgraded: 0, refused: 0 });

    const lines = join(dir, 'in.txt');
    writeFileSync(
      lines,
      '# exported from the old system\nc1@example.test\n\n  C2@Example.test  \na1@example.test\n',
    );
    r = await run('import', [lines], { scope, reason: 'manual' });
    assert.deepEqual(json(r.out), { read: 3, added: 2, upgraded: 0, refused: 0 });

    const outCsv = join(dir, 'out.csv');
    r = await run('export', [outCsv], { scope });
    assert.deepEqual(json(r.out), { exported: 7, file: outCsv });
    const rows = readFileSync(outCsv, 'utf8').trimEnd().split('\n');
    assert.equal(rows[0], 'address,scope,reason,at,source');
    assert.equal(rows.length, 8);
    assert.ok(rows.includes(`a1@example.test,${scope},complaint,2024-01-02T03:04:05.678Z,arf`));
    const quoted = rows.find((l) => l.startsWith('"""q""@example.test"'));
    assert.ok(quoted !== undefined);
    assert.ok(quoted.startsWith(`"""q""@example.test",${scope},hard_bounce,`), quoted);
    assert.ok(quoted.endsWith(',dsn'), quoted);

    // The CSV export imports into another scope as the same entries; so does the JSON Lines export.
    r = await run('import', [outCsv], { scope: 'cli-copy.example' });
    assert.deepEqual(json(r.out), { read: 7, added: 7, upgraded: 0, refused: 0 });
    const outJsonl = join(dir, 'out.jsonl');
    await run('export', [outJsonl], { scope });
    const copyJsonl = join(dir, 'copy.jsonl');
    await run('export', [copyJsonl], { scope: 'cli-copy.example' });
    const strip = (file: string) =>
      readFileSync(file, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => {
          const { scope: _scope, ...rest } = JSON.parse(l) as Record<string, unknown>;
          return rest;
        });
    const original = strip(outJsonl);
    assert.equal(original.length, 7);
    assert.deepEqual(strip(copyJsonl), original);
    assert.deepEqual(
      original.find((e) => e.address === 'b2@example.test'),
      {
        address: 'b2@example.test',
        reason: 'manual',
        at: original.find((e) => e.address === 'b2@example.test')!.at,
        source: 'ops',
      },
    );

    r = await run('export', ['-'], { scope, format: 'lines' });
    assert.deepEqual(r.out.trimEnd().split('\n').sort(), [
      '"q"@example.test',
      'a1@example.test',
      'a2@example.test',
      'b1@example.test',
      'b2@example.test',
      'c1@example.test',
      'c2@example.test',
    ]);
  });

  it('a bad row refuses the file, naming the row, and adds nothing; --skip-invalid adds the rest', async () => {
    const scope = 'cli-bad.example';
    const file = join(dir, 'bad.csv');
    writeFileSync(
      file,
      'address,reason\nok1@example.test,unsubscribe\nnot-an-address,\nok2@example.test,spam\n',
    );
    let r = await run('import', [file], { scope });
    assert.equal(r.code, 2);
    assert.deepEqual(r.err.trimEnd().split('\n'), [
      'row 2.address: is missing "@domain"',
      'row 3.reason: must be one of manual, hard_bounce, unsubscribe, complaint',
    ]);
    assert.equal(r.out, '');
    assert.deepEqual(json((await run('count', [], { scope })).out), { scope, count: 0 });

    r = await run('import', [file], { scope, skipInvalid: true });
    assert.equal(r.code, 0);
    assert.deepEqual(json(r.out), { read: 3, added: 1, upgraded: 0, refused: 2 });
    assert.match(r.err, /^row 2: address: is missing "@domain"\nrow 3: reason: /);
  });

  it('usage errors exit 2 and name the flag', async () => {
    let r = await run('add', ['a@example.test'], { scope: 'Bad Scope' });
    assert.deepEqual([r.code, r.err.split(':')[0]], [2, 'scope']);
    r = await run('add', ['a@example.test'], { scope: 'ok.example', reason: 'spam' });
    assert.deepEqual([r.code, r.err.split(':')[0]], [2, '--reason']);
    r = await run('list', [], { scope: 'ok.example', count: '5000' });
    assert.deepEqual([r.code, r.err.split(':')[0]], [2, '--count']);
    r = await run('import', [join(dir, 'missing.csv')], { scope: 'ok.example' });
    assert.equal(r.code, 2);
    assert.match(r.err, /missing\.csv: cannot read \(ENOENT\)/);
    r = await run('export', [join(dir, 'no-such-dir', 'out.csv')], { scope: 'ok.example' });
    assert.equal(r.code, 2);
    assert.match(r.err, /cannot write \(ENOENT\)/);
    r = await run('import', [join(dir, 'in.csv')], { scope: 'ok.example', format: 'xml' });
    assert.deepEqual([r.code, r.err.split(':')[0]], [2, '--format']);
  });
});
