import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoResourceLeaks, snapshotResources } from '../../harness/leaks.js';
import { freePort } from '../../harness/ports.js';
import { waitFor, waitForValue, WaitTimeoutError } from '../../harness/wait-for.js';

void describe('waitFor and waitForValue', { timeout: 60_000 }, () => {
  let baseline: string[];
  before(() => {
    baseline = snapshotResources();
  });
  after(async () => {
    await assertNoResourceLeaks(baseline);
  });

  void it('resolves as soon as the condition holds, probing at the interval', async () => {
    let probes = 0;
    await waitFor(() => ++probes === 3, { intervalMs: 5 });
    assert.equal(probes, 3);
  });

  void it('accepts asynchronous conditions', async () => {
    let probes = 0;
    await waitFor(() => Promise.resolve(++probes >= 2), { intervalMs: 5 });
    assert.equal(probes, 2);
  });

  void it('waitForValue resolves with the first defined value, treating throws as not yet', async () => {
    let probes = 0;
    const value = await waitForValue(
      () => {
        probes += 1;
        if (probes === 1) throw new Error('not ready');
        return probes === 3 ? { probes } : undefined;
      },
      { intervalMs: 5 },
    );
    assert.deepEqual(value, { probes: 3 });
  });

  void it('times out with the `what` text, after at least timeoutMs', async () => {
    const started = performance.now();
    await assert.rejects(
      waitFor(() => false, { timeoutMs: 150, intervalMs: 10, what: 'the moon to turn blue' }),
      {
        name: 'WaitTimeoutError',
        code: 'ERR_WAIT_TIMEOUT',
        message: 'timed out after 150ms waiting for the moon to turn blue',
      },
    );
    assert.ok(performance.now() - started >= 145, 'does not give up early');
  });

  void it('gives the last probe error as the cause', async () => {
    let probes = 0;
    await assert.rejects(
      waitForValue(
        () => {
          probes += 1;
          throw new Error(`failure ${probes}`);
        },
        { timeoutMs: 60, intervalMs: 10 },
      ),
      (err: unknown) => {
        assert.ok(err instanceof WaitTimeoutError);
        assert.ok(err.cause instanceof Error);
        assert.equal(err.cause.message, `failure ${probes}`);
        assert.match(err.message, /waiting for condition$/);
        return true;
      },
    );
    assert.ok(probes >= 2, `probed ${probes} time(s)`);
  });

  void it('is bounded even when a probe never settles', async () => {
    const started = performance.now();
    await assert.rejects(
      waitFor(() => new Promise<boolean>(() => undefined), { timeoutMs: 100, what: 'a hung probe' }),
      WaitTimeoutError,
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 95 && elapsed < 2000, `took ${elapsed}ms`);
  });
});

void describe('freePort', { timeout: 60_000 }, () => {
  void it('returns a loopback port that can be bound right away', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port, exclusive: true }, resolve);
    });
    assert.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
