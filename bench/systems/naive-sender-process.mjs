#!/usr/bin/env node
// The naive sender: one new non-pooled nodemailer transporter, and so one new SMTP connection, per
// message, awaited one after the other. Builds its messages first, prints "ready", starts sending when
// it reads "go" on standard input, prints "sent N" when done, and exits when standard input closes.
//   node bench/systems/naive-sender-process.mjs COUNT SINK_PORT
import { createInterface } from 'node:readline';
import nodemailer from 'nodemailer';
import { newsletter } from '../lib/newsletter.mjs';

const count = Number(process.argv[2]);
const port = Number(process.argv[3]);
if (!Number.isInteger(count) || count <= 0 || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: naive-sender-process.mjs COUNT SINK_PORT\n');
  process.exit(2);
}
const messages = Array.from({ length: count }, (_, i) => newsletter(i));

async function sendAll() {
  for (const message of messages) {
    const transporter = nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
    });
    try {
      await transporter.sendMail(message);
    } finally {
      transporter.close();
    }
  }
  process.stdout.write(`sent ${count}\n`);
}

const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim() !== 'go') return;
  sendAll().catch((/** @type {unknown} */ err) => {
    process.stderr.write(`naive sender failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
});
input.on('close', () => process.exit(0));
process.stdout.write('ready\n');
