import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import {
  computeWebhookSignature,
  signWebhookPayload,
  verifyWebhookSignature,
  webhookBodySchema,
} from '@mailroom/webhooks';

const PYTHON = '/usr/bin/python3';
const DOC = fileURLToPath(new URL('../../../../docs/webhooks.md', import.meta.url));
const SECRET = 'whsec-0123456789abcdef0123456789abcdef';
const OLD_SECRET = 'whsec-old-fedcba9876543210fedcba9876543210';
const BODY = JSON.stringify([
  {
    id: '5f0c6c2e-2b1e-4bb1-9d7e-3c1d2a0e9f10',
    type: 'bounced',
    occurredAt: '2025-03-01T12:00:00.000Z',
    messageId: 'msg_01',
    recipient: 'ada@example.org',
    smtp: { code: 550, enhanced: '5.1.1', response: '550 5.1.1 user unknown – “quoted”' },
  },
]);
const T = 1_740_830_400; // 2025-03-01T12:00:00Z
const NOW = T * 1000;

/** The fenced code blocks of docs/webhooks.md in one language. */
function docBlocks(language: string): string[] {
  const text = readFileSync(DOC, 'utf8');
  return [...text.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

function python(script: string, input: string, env: Record<string, string> = {}): string {
  const run = spawnSync(PYTHON, ['-c', script], {
    input,
    env: { PATH: '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(run.status, 0, `python failed: ${run.stderr}`);
  return run.stdout.trim();
}

describe('webhook signatures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-webhook-sig-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('signs HMAC-SHA256 over "<t>.<body>" and the helper verifies it', () => {
    const header = signWebhookPayload(BODY, [SECRET], T);
    const independent = createHmac('sha256', SECRET).update(`${T}.${BODY}`, 'utf8').digest('hex');
    assert.equal(header, `t=${T},v1=${independent}`);
    assert.deepEqual(verifyWebhookSignature(BODY, header, [SECRET], { now: NOW }), {
      ok: true,
      timestamp: T,
    });
    assert.deepEqual(verifyWebhookSignature(Buffer.from(BODY), header, SECRET, { now: NOW }), {
      ok: true,
      timestamp: T,
    });
    // The payload the example signs is one a receiver can parse with the published schema.
    assert.equal(webhookBodySchema.parse(JSON.parse(BODY)).length, 1);
  });

  it('refuses a changed body, a wrong secret, a replay outside the window and malformed headers', () => {
    const header = signWebhookPayload(BODY, [SECRET], T);
    assert.deepEqual(verifyWebhookSignature(BODY.replace('550', '551'), header, [SECRET], { now: NOW }), {
      ok: false,
      reason: 'no_match',
    });
    assert.deepEqual(verifyWebhookSignature(BODY, header, [OLD_SECRET], { now: NOW }), {
      ok: false,
      reason: 'no_match',
    });
    assert.deepEqual(verifyWebhookSignature(BODY, header, [SECRET], { now: NOW + 301_000 }), {
      ok: false,
      reason: 'outside_tolerance',
    });
    assert.deepEqual(verifyWebhookSignature(BODY, header, [SECRET], { now: NOW - 301_000 }), {
      ok: false,
      reason: 'outside_tolerance',
    });
    assert.equal(verifyWebhookSignature(BODY, header, [SECRET], { now: NOW + 299_000 }).ok, true);
    assert.equal(
      verifyWebhookSignature(BODY, header, [SECRET], { now: NOW + 3_600_000, toleranceSeconds: 3600 }).ok,
      true,
    );
    const v1 = computeWebhookSignature(BODY, SECRET, T);
    for (const bad of [
      undefined,
      '',
      `v1=${v1}`,
      `t=${T}`,
      `t=abc,v1=${v1}`,
      `t=${T},v1=${v1.slice(0, 63)}`,
      `t=${T},t=${T},v1=${v1}`,
      `t=${T},${Array.from({ length: 20 }, () => `v1=${v1}`).join(',')}`,
    ]) {
      assert.deepEqual(verifyWebhookSignature(BODY, bad, [SECRET], { now: NOW }), {
        ok: false,
        reason: 'malformed',
      });
    }
    // Upper-case hex, spaces and an unknown scheme beside v1 are accepted.
    assert.equal(
      verifyWebhookSignature(BODY, ` t=${T} , v0=abc, v1=${v1.toUpperCase()}`, [SECRET], { now: NOW }).ok,
      true,
    );
  });

  it('signs with every secret during a rotation, so either one verifies', () => {
    const header = signWebhookPayload(BODY, [SECRET, OLD_SECRET], T);
    assert.equal(header.split(',').filter((p) => p.startsWith('v1=')).length, 2);
    assert.equal(verifyWebhookSignature(BODY, header, [OLD_SECRET], { now: NOW }).ok, true);
    assert.equal(verifyWebhookSignature(BODY, header, [SECRET], { now: NOW }).ok, true);
    assert.equal(verifyWebhookSignature(BODY, header, ['x'.repeat(40)], { now: NOW }).ok, false);
  });

  it("matches Python's hmac, and the Python example of docs/webhooks.md verifies it", () => {
    const header = signWebhookPayload(BODY, [SECRET], T);
    const hex = python(
      'import hmac, hashlib, os, sys\n' +
        'body = sys.stdin.buffer.read()\n' +
        'msg = os.environ["T"].encode() + b"." + body\n' +
        'print(hmac.new(os.environ["S"].encode(), msg, hashlib.sha256).hexdigest())\n',
      BODY,
      { T: String(T), S: SECRET },
    );
    assert.equal(`t=${T},v1=${hex}`, header);

    const [example] = docBlocks('python').filter((b) => b.includes('def verify_mailroom_signature'));
    assert.ok(example, 'docs/webhooks.md has the Python verification example');
    const call =
      '\nimport os, sys\n' +
      'body = sys.stdin.buffer.read()\n' +
      'ok = verify_mailroom_signature(body, os.environ["H"], [os.environ["S"]], now=float(os.environ["NOW"]))\n' +
      'bad = verify_mailroom_signature(body + b" ", os.environ["H"], [os.environ["S"]], now=float(os.environ["NOW"]))\n' +
      'late = verify_mailroom_signature(body, os.environ["H"], [os.environ["S"]], now=float(os.environ["NOW"]) + 301)\n' +
      'print(ok, bad, late)\n';
    assert.equal(
      python(example + call, BODY, {
        H: signWebhookPayload(BODY, [OLD_SECRET, SECRET], T),
        S: SECRET,
        NOW: String(T),
      }),
      'True False False',
    );
  });

  it('the standalone Node example of docs/webhooks.md verifies it', async () => {
    const [example] = docBlocks('js').filter((b) => b.includes('function verifyMailroomSignature'));
    assert.ok(example, 'docs/webhooks.md has the standalone Node example');
    const file = join(dir, 'verify-example.mjs');
    writeFileSync(file, example);
    const { verifyMailroomSignature } = (await import(pathToFileURL(file).href)) as {
      verifyMailroomSignature: (
        body: Buffer,
        header: string,
        secrets: string[],
        toleranceSeconds?: number,
        now?: number,
      ) => boolean;
    };
    const header = signWebhookPayload(BODY, [SECRET, OLD_SECRET], T);
    assert.equal(verifyMailroomSignature(Buffer.from(BODY), header, [OLD_SECRET], 300, NOW), true);
    assert.equal(verifyMailroomSignature(Buffer.from(BODY + ' '), header, [SECRET], 300, NOW), false);
    assert.equal(verifyMailroomSignature(Buffer.from(BODY), header, [SECRET], 300, NOW + 301_000), false);
    assert.equal(verifyMailroomSignature(Buffer.from(BODY), 'garbage', [SECRET], 300, NOW), false);
  });
});
