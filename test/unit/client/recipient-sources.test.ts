import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { recipientsFromCsv, recipientsFromJsonl, type CampaignRecipientInput } from '@mailroom/client';

async function all(source: AsyncIterable<CampaignRecipientInput>): Promise<CampaignRecipientInput[]> {
  const out: CampaignRecipientInput[] = [];
  for await (const r of source) out.push(r);
  return out;
}

describe('recipient sources', () => {
  it('CSV: the email column is the address, name the display name, every column a merge variable', async () => {
    const csv =
      '\uFEFFemail,name,plan\r\nada@example.test,Ada Lovelace,pro\r\n\r\nbob@example.test,,free\r\n';
    const rows = await all(recipientsFromCsv(Readable.from([csv])));
    assert.deepEqual(rows, [
      {
        to: { name: 'Ada Lovelace', address: 'ada@example.test' },
        vars: { email: 'ada@example.test', name: 'Ada Lovelace', plan: 'pro' },
      },
      { to: 'bob@example.test', vars: { email: 'bob@example.test', name: '', plan: 'free' } },
    ]);
  });

  it('CSV: an unclosed quote is reported as a refusal; the rows before it still come', async () => {
    const csv = 'to,name\nada@example.test,Ada\n"broken,quote\nbob@example.test,Bob\n';
    const rows = await all(recipientsFromCsv(Readable.from(csv.split(/(?<=\n)/))));
    assert.ok(
      rows.some((r) => JSON.stringify(r.to) === JSON.stringify({ name: 'Ada', address: 'ada@example.test' })),
      JSON.stringify(rows),
    );
    // The quote swallows the rest of the file, so that is one refusal, not a silent loss.
    assert.ok(
      rows.some((r) => /^CSV: Quote Not Closed/.test(r.parseError ?? '')),
      JSON.stringify(rows),
    );
  });

  it('CSV: a row with the wrong number of columns is a refusal, the next row still comes', async () => {
    const csv = 'email,name\nada@example.test,Ada,extra\nbob@example.test,Bob\n';
    const rows = await all(recipientsFromCsv(Readable.from([csv])));
    assert.equal(rows.length, 2);
    assert.match(rows[0]!.parseError ?? '', /^CSV: /);
    assert.deepEqual(rows[1]!.to, { name: 'Bob', address: 'bob@example.test' });
  });

  it('JSON Lines: {to, vars} objects, flat objects with email, and bad lines as refusals', async () => {
    const jsonl = [
      '{"to":"ada@example.test","vars":{"name":"Ada"}}',
      '',
      '{"email":"bob@example.test","name":"Bob","plan":"pro"}',
      '{not json',
      '"carol@example.test"',
    ].join('\n');
    const rows = await all(recipientsFromJsonl(Readable.from([jsonl])));
    assert.equal(rows.length, 4);
    assert.deepEqual(rows[0], { to: 'ada@example.test', vars: { name: 'Ada' } });
    assert.deepEqual(rows[1], {
      to: { name: 'Bob', address: 'bob@example.test' },
      vars: { email: 'bob@example.test', name: 'Bob', plan: 'pro' },
    });
    assert.match(rows[2]!.parseError ?? '', /^not JSON/);
    assert.deepEqual(rows[3], { to: 'carol@example.test' });
  });
});
