import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on `host` (default `127.0.0.1`): binds port 0, reads the port it got,
 * closes the listener and returns the number.
 *
 * The port is only free at that instant: another process may take it before the caller binds it, so
 * callers that start servers on it must retry with a new port when the bind fails.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close((err) => {
        if (err) reject(err);
        else if (port === undefined) reject(new Error(`could not read the port bound on ${host}`));
        else resolve(port);
      });
    });
  });
}
