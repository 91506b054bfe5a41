import { postfixRelay } from './postfix-relay.mjs';
import { naiveSender } from './naive-sender.mjs';
import { bullmqNodemailer } from './bullmq-nodemailer.mjs';
import { mailroomSystem } from './mailroom.mjs';

/** The id of the Mailroom system every other system is compared with. */
export const MAILROOM_ID = 'mailroom';

/**
 * Every system the benchmark knows, in report order: the references (Postfix, the naive sender, the plain
 * BullMQ pipeline), then Mailroom, then each Mailroom variant.
 * @param {{ mailroomEnv: Record<string, string>, mailroomVariants: readonly import('../lib/bench-args.mjs').MailroomVariant[], mailroomHandOver: import('./mailroom.mjs').MailroomHandOver }} options
 *   `mailroomEnv` and `mailroomHandOver` apply to Mailroom and to every variant; a variant's own settings
 *   come on top of `mailroomEnv`
 * @returns {import('../lib/measure-run.mjs').BenchSystem[]}
 */
export function benchSystems({ mailroomEnv, mailroomVariants, mailroomHandOver }) {
  return [
    postfixRelay,
    naiveSender,
    bullmqNodemailer,
    mailroomSystem({ id: MAILROOM_ID, env: mailroomEnv, handOver: mailroomHandOver }),
    ...mailroomVariants.map(({ name, env }) =>
      mailroomSystem({
        id: `${MAILROOM_ID}-${name}`,
        label: `Mailroom (${name}: ${Object.entries(env)
          .map(([key, value]) => `${key}=${value}`)
          .join(', ')})`,
        env: { ...mailroomEnv, ...env },
        handOver: mailroomHandOver,
      }),
    ),
  ];
}
