import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { MailroomClient } from '@mailroom/client';
import { isTerminalState } from '@mailroom/core';
import { Ledger, createMailQueue, type MailJobData, type MessageStatus } from '@mailroom/queue';
import type { Sink } from '@mailroom/sink';
import {
  createLogger,
  loadWorkerConfig,
  startWorkerService,
  type Logger,
  type WorkerService,
} from '@mailroom/worker';
import type { RedisServer } from '../harness/redis.js';
import { waitFor } from '../harness/wait-for.js';

/** Worker environment for tests: fast retries, short locks, no HTTP listener unless asked. */
export function workerEnv(
  redis: RedisServer,
  sink: Sink,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    MAILROOM_REDIS_URL: redis.url,
    MAILROOM_SMTP_HOST: '127.0.0.1',
    MAILROOM_SMTP_PORT: String(sink.port),
    MAILROOM_SMTP_TLS: 'none',
    MAILROOM_WORKER_CONCURRENCY: '10',
    MAILROOM_RETRY_BASE_MS: '50',
    MAILROOM_RETRY_MAX_MS: '200',
    MAILROOM_CONFIG_FAULT_PAUSE_MS: '300',
    MAILROOM_LOCK_DURATION_MS: '5000',
    MAILROOM_STALLED_INTERVAL_MS: '2000',
    MAILROOM_SHUTDOWN_TIMEOUT_MS: '5000',
    MAILROOM_SMTP_GREETING_TIMEOUT_MS: '2000',
    MAILROOM_SMTP_CONNECTION_TIMEOUT_MS: '2000',
    MAILROOM_SMTP_SOCKET_TIMEOUT_MS: '5000',
    MAILROOM_HTTP_PORT: '-1',
    MAILROOM_LOG_LEVEL: 'silent',
    ...extra,
  };
}

/** A logger whose lines are kept in memory, so tests can check what was (not) logged. */
export function memoryLogger(level = 'info'): { logger: Logger; lines: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: createLogger(level, stream), lines: () => chunks.join('') };
}

export async function startTestWorker(env: NodeJS.ProcessEnv, logger?: Logger): Promise<WorkerService> {
  return startWorkerService(loadWorkerConfig(env), { logger: logger ?? createLogger('silent') });
}

export function testClient(
  redis: RedisServer,
  options: { maxMessageBytes?: number; maxAgeMs?: number } = {},
) {
  return new MailroomClient({ redis: redis.url, ...options });
}

/** Reads the ledger (a message's status) and BullMQ (its job), for assertions. */
export function jobReader(connection: Redis) {
  const queue = createMailQueue(connection, { prefix: '{mailroom}' });
  const ledger = new Ledger(connection, { prefix: '{mailroom}' });
  return {
    queue,
    ledger,
    async job(id: string): Promise<Job<MailJobData> | undefined> {
      return (await queue.getJob(id)) as Job<MailJobData> | undefined;
    },
    async status(id: string): Promise<MessageStatus> {
      const status = await ledger.status(id);
      assert.ok(status, `message ${id} has a ledger record`);
      return status;
    },
    /** Waits until the message reaches a terminal state and returns its status. */
    async finished(id: string, timeoutMs = 15_000): Promise<MessageStatus> {
      let result: MessageStatus | undefined;
      await waitFor(
        async () => {
          const status = await ledger.status(id);
          if (status && isTerminalState(status.state)) result = status;
          return result !== undefined;
        },
        { timeoutMs, what: `message ${id} to finish` },
      );
      return result!;
    },
  };
}

export function message(to: string, extra: Record<string, unknown> = {}) {
  return {
    from: { name: 'Mailroom Tests', address: 'sender@mailroom.example' },
    to,
    subject: `Test message to ${to.split('@')[0]}`,
    text: 'Hello from the integration suite.\n',
    html: '<p>Hello from the <b>integration</b> suite.</p>',
    ...extra,
  };
}
