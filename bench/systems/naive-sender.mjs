import { fileURLToPath } from 'node:url';
import { assertRunning, startProcess } from '../lib/child-process.mjs';

const SCRIPT = fileURLToPath(new URL('./naive-sender-process.mjs', import.meta.url));

/**
 * (c) The naive sender: a new nodemailer non-pooled transporter and SMTP connection per message, one
 * message at a time, in one Node process. The baseline a hand-written loop gives. It has no queue, so it
 * sends at the same rate from first to last message and may be measured over a time box.
 * @type {import('../lib/measure-run.mjs').BenchSystem}
 */
export const naiveSender = {
  id: 'naive',
  label: 'naive sender (connection per message, serial)',
  unavailableReason: () => undefined,
  settings: () => ({
    processes: 1,
    transport: 'nodemailer createTransport() per message, not pooled; closed after each message',
    concurrency: 1,
    connections: '1 at a time, a new one per message (--connections does not apply)',
    timeBoxed: 'stops after --steady-max-s seconds if N is not reached; its rate is what the sink counted',
  }),
  async setUp({ n, relayPort, timeoutMs }) {
    const sender = startProcess(process.execPath, [SCRIPT, String(n), String(relayPort)], {
      name: 'naive sender',
      stdin: true,
    });
    const stop = async () => {
      sender.endInput();
      await sender.stop({ graceMs: 5000 });
    };
    try {
      await sender.waitForOutput(/^ready$/m, timeoutMs);
    } catch (err) {
      await stop();
      throw err;
    }
    return {
      processes: [{ name: 'naive sender', pid: sender.pid }],
      steady: true,
      async handOver() {
        sender.write('go\n');
        // The naive sender hands each message over by sending it: hand-over ends with the last one.
        await sender.waitForOutput(/^sent \d+$/m, 24 * 3600 * 1000);
      },
      assertHealthy: () => assertRunning([sender]),
      tearDown: stop,
    };
  },
};
