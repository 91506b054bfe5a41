#!/usr/bin/env node
// One worker process of the plain BullMQ + nodemailer pipeline: each job carries the whole message, and
// the processor hands it to a pooled nodemailer transporter. Prints "ready" once the worker is connected.
// Settings come from the environment (see bullmq-nodemailer.mjs).
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import nodemailer from 'nodemailer';

const env = process.env;
const connection = new Redis(String(env.BENCH_REDIS_URL), { maxRetriesPerRequest: null });
const transporter = nodemailer.createTransport({
  pool: true,
  host: '127.0.0.1',
  port: Number(env.BENCH_SINK_PORT),
  secure: false,
  ignoreTLS: true,
  maxConnections: Number(env.BENCH_MAX_CONNECTIONS),
});
const worker = new Worker(String(env.BENCH_QUEUE), (job) => transporter.sendMail(job.data), {
  connection,
  prefix: String(env.BENCH_PREFIX),
  concurrency: Number(env.BENCH_CONCURRENCY),
});
worker.on('failed', (job, err) => process.stderr.write(`job ${job?.id ?? '?'} failed: ${err.message}\n`));
worker.on('error', (err) => process.stderr.write(`worker error: ${err.message}\n`));
await worker.waitUntilReady();
process.stdout.write('ready\n');

async function shutdown() {
  await worker.close();
  transporter.close();
  connection.disconnect();
  process.exit(0);
}
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => void shutdown());
