import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request the receiver got. */
export interface ReceivedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent. */
  readonly body: Buffer;
  /** What the receiver answered: a status, or `hang` (no answer until the receiver closes). */
  readonly answer: number | 'hang';
}

/** What to answer to the n-th request (from 0) on a path. */
export type ReceiverScript = (path: string, n: number) => number | 'hang';

export interface WebhookReceiver {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly requests: readonly ReceivedRequest[];
  /** Requests on one path. */
  on(path: string): ReceivedRequest[];
  /** Closes the listener and every connection, answered or not. */
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 and an ephemeral port that records every request and answers by script. */
export async function startWebhookReceiver(script: ReceiverScript = () => 200): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  const counts = new Map<string, number>();
  const hanging = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      const n = counts.get(path) ?? 0;
      counts.set(path, n + 1);
      const answer = script(path, n);
      requests.push({ path, headers: req.headers, body: Buffer.concat(chunks), answer });
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'ok' : 'no');
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    on: (path) => requests.filter((r) => r.path === path),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const res of hanging) res.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
