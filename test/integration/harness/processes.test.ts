import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { ChildOutputError, killAllChildren, spawnNode } from '../../harness/processes.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/child-fixture.js', import.meta.url));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

void describe('spawnNode', { timeout: 60_000 }, () => {
  let baseline: string[];
  before(() => {
    baseline = snapshotResources();
  });
  after(async () => {
    await killAllChildren();
    await assertNoResourceLeaks(baseline);
  });

  void it('captures stdout and stderr, passes the environment, and matches output as it arrives', async () => {
    const child = spawnNode(FIXTURE, ['serve'], {
      env: { ...process.env, MAILROOM_FIXTURE_GREETING: 'hello' },
    });
    const match = await child.waitForOutput(/ready pid=(\d+) greeting=(\w+)/g);
    assert.equal(Number(match[1]), child.pid);
    assert.equal(match[2], 'hello');
    await child.waitForOutput(/diagnostics on stderr/);
    child.kill();
    assert.deepEqual(await child.exited, { code: 7, signal: null });
    assert.match(child.output(), /stopping/);
  });

  void it('reports a SIGKILL as the exit signal', async () => {
    const child = spawnNode(FIXTURE, ['stubborn']);
    await child.waitForOutput(/ready/);
    child.kill('SIGTERM');
    await child.waitForOutput(/ignoring SIGTERM/);
    assert.ok(isAlive(child.pid), 'a child that ignores SIGTERM is still running');
    child.kill('SIGKILL');
    assert.deepEqual(await child.exited, { code: null, signal: 'SIGKILL' });
    assert.equal(isAlive(child.pid), false);
  });

  void it('reports the exit code, and kill() after the exit is a no-op', async () => {
    const child = spawnNode(FIXTURE, ['exit', '3']);
    assert.deepEqual(await child.exited, { code: 3, signal: null });
    assert.equal(child.output(), 'bye\n');
    child.kill('SIGKILL');
    assert.deepEqual(await child.exited, { code: 3, signal: null });
  });

  void it('rejects waitForOutput when the child exits without printing the pattern', async () => {
    const child = spawnNode(FIXTURE, ['exit', '0']);
    await assert.rejects(child.waitForOutput(/never printed/), (err: unknown) => {
      assert.ok(err instanceof ChildOutputError);
      assert.equal(err.code, 'ERR_CHILD_EXITED');
      assert.match(err.message, /bye/);
      return true;
    });
  });

  void it('rejects waitForOutput after the timeout, with the output so far', async () => {
    const child = spawnNode(FIXTURE, ['serve']);
    await child.waitForOutput(/ready/);
    const started = performance.now();
    await assert.rejects(child.waitForOutput(/never printed/, 200), (err: unknown) => {
      assert.ok(err instanceof ChildOutputError);
      assert.equal(err.code, 'ERR_CHILD_OUTPUT_TIMEOUT');
      assert.match(err.message, /ready pid=/);
      return true;
    });
    assert.ok(performance.now() - started >= 190);
    child.kill();
    await child.exited;
  });

  void it('killAllChildren SIGKILLs the survivors and waits for their exits', async () => {
    const children = [spawnNode(FIXTURE, ['stubborn']), spawnNode(FIXTURE, ['serve'])];
    await Promise.all(children.map((child) => child.waitForOutput(/ready/)));
    await killAllChildren();
    for (const child of children) {
      assert.deepEqual(await child.exited, { code: null, signal: 'SIGKILL' });
      assert.equal(isAlive(child.pid), false);
    }
  });
});
