import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { assertNoResourceLeaks, ResourceLeakError, snapshotResources } from '../../harness/leaks.js';

void describe('assertNoResourceLeaks', { timeout: 60_000 }, () => {
  void it('lists a timer still pending, and passes once it is cleared', async () => {
    const before = snapshotResources();
    const timer = setTimeout(() => undefined, 60_000);
    try {
      await assert.rejects(assertNoResourceLeaks(before, { timeoutMs: 100 }), (err: unknown) => {
        assert.ok(err instanceof ResourceLeakError);
        assert.equal(err.code, 'ERR_RESOURCE_LEAK');
        assert.deepEqual(err.leaked, ['Timeout']);
        return true;
      });
    } finally {
      clearTimeout(timer);
    }
    await assertNoResourceLeaks(before);
  });

  void it('lists a listening server and an open socket, and waits for them to close', async () => {
    const before = snapshotResources();
    const server = createServer((socket) => socket.on('end', () => socket.end()));
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    const socket = connect({ host: '127.0.0.1', port: address.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));

    await assert.rejects(assertNoResourceLeaks(before, { timeoutMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof ResourceLeakError);
      assert.ok(err.leaked.includes('TCPServerWrap'), err.message);
      assert.ok(err.leaked.filter((kind) => kind === 'TCPSocketWrap').length === 2, err.message);
      return true;
    });

    // Closing is asynchronous: the assertion has to wait for it, not sample once.
    socket.end();
    server.close();
    await assertNoResourceLeaks(before);
  });
});
