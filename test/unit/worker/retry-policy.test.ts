import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextAttemptDelayMs, retryDelayMs } from '@mailroom/worker';

const policy = { baseMs: 30_000, maxMs: 1_800_000 };

describe('retry policy', () => {
  it('doubles per attempt with equal jitter: between half and all of the step', () => {
    assert.equal(
      retryDelayMs(1, policy, () => 0),
      15_000,
    );
    assert.equal(
      retryDelayMs(1, policy, () => 1),
      30_000,
    );
    assert.equal(
      retryDelayMs(2, policy, () => 1),
      60_000,
    );
    assert.equal(
      retryDelayMs(3, policy, () => 0),
      60_000,
    );
  });

  it('is capped', () => {
    assert.equal(
      retryDelayMs(30, policy, () => 1),
      1_800_000,
    );
    assert.equal(
      retryDelayMs(1000, policy, () => 1),
      1_800_000,
    );
  });

  it('never schedules past the deadline, and gives up when no time is left', () => {
    const now = 1_000_000;
    assert.equal(
      nextAttemptDelayMs(10, now + 61_000, now, policy, () => 1),
      60_000,
    );
    assert.equal(nextAttemptDelayMs(1, now + 500, now, policy), null);
    assert.equal(nextAttemptDelayMs(1, now - 1, now, policy), null);
  });
});
