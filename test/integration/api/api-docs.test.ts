import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { API_ERROR_STATUS, apiSettings, settingsTable } from '@mailroom/api';

const doc = readFileSync(new URL('../../../../docs/api.md', import.meta.url), 'utf8');

describe('docs/api.md', () => {
  it('holds the configuration table generated from the API settings', () => {
    assert.ok(doc.includes(settingsTable(apiSettings)), 'regenerate the table from apps/api/src/config.ts');
  });

  it('lists every API error code with its status, and nothing else', () => {
    const rows = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    assert.deepEqual(rows, Object.entries(API_ERROR_STATUS));
  });
});
