import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isMessageId } from '@mailroom/core';
import { mailroomIdOf, parseFeedback, type FeedbackReport, type VerpOptions } from '@mailroom/feedback';

/**
 * The corpus: one .eml per report format of the big providers and MTAs, and test/fixtures/feedback/
 * expected.json, which gives for each file the whole report parseFeedback must return (every field, and
 * so also which fields must be absent) with the corpus's VERP settings, and the envelope recipients the
 * report arrived for when a test passes them.
 */
interface Manifest {
  readonly verp: VerpOptions;
  readonly reports: Record<string, { readonly rcptTo?: string[]; readonly expected: FeedbackReport }>;
}

const CORPUS = fileURLToPath(new URL('../../../fixtures/feedback/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${CORPUS}expected.json`, 'utf8')) as Manifest;
const files = readdirSync(CORPUS)
  .filter((name) => name.endsWith('.eml'))
  .sort();

function load(name: string): Buffer {
  return readFileSync(`${CORPUS}${name}`);
}

void describe('feedback corpus', () => {
  void it('has an expected report for every .eml and an .eml for every expected report', () => {
    assert.ok(files.length >= 30, `only ${files.length} files`);
    assert.deepEqual(Object.keys(manifest.reports).sort(), files);
  });

  void it('covers every kind, format, generator and id source', () => {
    const expected = Object.values(manifest.reports).map((entry) => entry.expected);
    const seen = (pick: (report: FeedbackReport) => string | undefined): string[] =>
      [...new Set(expected.map(pick).filter((value) => value !== undefined))].sort();
    assert.deepEqual(
      seen((r) => r.kind),
      ['bounce', 'complaint', 'delay', 'unknown'],
    );
    assert.deepEqual(
      seen((r) => r.format),
      ['arf', 'auto-reply', 'dsn', 'text'],
    );
    assert.deepEqual(
      seen((r) => r.bounceClass),
      ['hard', 'soft'],
    );
    assert.deepEqual(
      seen((r) => r.mailroomIdSource),
      ['message-id', 'verp'],
    );
    assert.deepEqual(
      seen((r) => r.generator),
      ['amazon-ses', 'exchange', 'exim', 'gmail', 'microsoft', 'postfix', 'qmail', 'sendmail', 'yahoo'],
    );
  });

  for (const name of files) {
    void it(`reads ${name}`, async () => {
      const entry = manifest.reports[name];
      assert.ok(entry !== undefined, `${name} has no entry in expected.json`);
      const report = await parseFeedback(load(name), {
        verp: manifest.verp,
        ...(entry.rcptTo === undefined ? {} : { rcptTo: entry.rcptTo }),
      });
      assert.deepEqual(report, entry.expected);
    });
  }

  void it('reads the same reports from a string as from a Buffer', async () => {
    for (const name of files.slice(0, 8)) {
      const entry = manifest.reports[name];
      const options = {
        verp: manifest.verp,
        ...(entry?.rcptTo === undefined ? {} : { rcptTo: entry.rcptTo }),
      };
      assert.deepEqual(await parseFeedback(load(name).toString('utf8'), options), entry?.expected, name);
    }
  });

  void it('without VERP settings, links by the returned Message-ID, to the same message the return path names', async () => {
    let linked = 0;
    for (const name of files) {
      const expected = manifest.reports[name]?.expected;
      assert.ok(expected !== undefined);
      const report = await parseFeedback(load(name));
      const fromMessageId = mailroomIdOf(expected.originalMessageId);
      // Everything but the link is the same.
      const { mailroomId, mailroomIdSource, ...rest } = report;
      const { mailroomId: _id, mailroomIdSource: _source, ...expectedRest } = expected;
      assert.deepEqual(rest, expectedRest, name);
      if (fromMessageId === undefined) {
        assert.equal(mailroomId, undefined, name);
        continue;
      }
      linked++;
      assert.ok(isMessageId(fromMessageId));
      assert.equal(mailroomIdSource, 'message-id', name);
      assert.equal(mailroomId, fromMessageId, name);
      if (expected.mailroomIdSource === 'verp') assert.equal(expected.mailroomId, fromMessageId, name);
    }
    assert.ok(linked >= 25, `only ${linked} reports carry a Mailroom Message-ID`);
  });
});
