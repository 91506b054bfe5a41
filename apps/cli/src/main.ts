import { Command, InvalidArgumentError } from 'commander';
import { redisTargetFromEnv, type RedisTarget } from '@mailroom/queue';
import { runWorkerFromEnv, VERSION } from '@mailroom/worker';
import { demoCommand } from './demo-command.js';
import { campaignControlCommand, campaignSendCommand, type CampaignSendFlags } from './campaign-command.js';
import { sendCommand, type SendFlags } from './send-command.js';
import { registerSuppressionCommand } from './suppression-command.js';
import { statusCommand } from './status-command.js';
import { registerApiCommand } from './api-command.js';
import { registerApiKeyCommand } from './api-key-command.js';
import { registerInboundCommand } from './inbound-command.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** Redis from MAILROOM_REDIS_URL, _CLUSTER or _SENTINELS (with their credentials), else REDIS_URL, else local. */
function defaultRedisUrl(): RedisTarget {
  return redisTargetFromEnv(process.env, process.env.REDIS_URL);
}

/** The `mailroom` command line. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('mailroom')
    .description('Queued bulk-mail dispatcher: BullMQ on Redis, pooled SMTP, Prometheus metrics.')
    .version(VERSION);

  program
    .command('worker')
    .description('run a delivery worker configured from MAILROOM_* environment variables (see README)')
    .action(async () => {
      await runWorkerFromEnv(process.env);
    });

  program
    .command('send')
    .description('validate and enqueue one message; prints {"id","messageId"}')
    .option('--json <file>', 'the message as JSON (a file path, or - for standard input)')
    .option('--from <mailbox>', 'sender, "Name <a@b.example>" or a@b.example')
    .option('--to <mailbox>', 'the one recipient')
    .option('--reply-to <mailbox>', 'Reply-To')
    .option('--subject <text>', 'subject')
    .option('--text <text>', 'plain-text body')
    .option('--html <html>', 'HTML body')
    .option('--text-file <file>', 'plain-text body from a file')
    .option('--html-file <file>', 'HTML body from a file')
    .option('--header <line>', 'extra header "Name: value" (allowlisted names), repeatable', collect)
    .option('--attach <file>', 'attach a file, repeatable', collect)
    .option('--tag <tag>', 'tag, repeatable', collect)
    .option(
      '--redis-url <url>',
      'Redis URL (default: MAILROOM_REDIS_URL, REDIS_URL or redis://127.0.0.1:6379)',
    )
    .option('--prefix <prefix>', 'queue key prefix (default {mailroom})')
    .option('--max-age-seconds <n>', 'give up (expire) after this long (default 86400)')
    .action(async (opts: Omit<SendFlags, 'redisUrl'> & { redisUrl?: string }) => {
      process.exitCode = await sendCommand(
        { ...opts, redisUrl: opts.redisUrl ?? defaultRedisUrl() },
        process.stdout,
        process.stderr,
      );
    });

  const campaign = program.command('campaign').description('newsletters: a template and a recipient list');
  campaign
    .command('send')
    .description(
      'upload a template and a recipient list (CSV with a header row, or .jsonl), then follow delivery',
    )
    .requiredOption(
      '--template <file>',
      'template JSON: from, subject, text, html, headers, attachments ({{merge}} fields)',
    )
    .requiredOption(
      '--recipients <file>',
      'CSV (email or to column, name, merge columns) or JSON Lines; - for stdin (CSV)',
    )
    .option('--name <name>', 'campaign name')
    .option('--send-at <date>', 'not before this time (ISO 8601)')
    .option('--batch-size <n>', 'messages per queue job (default 50)', positiveInt)
    .option('--detach', 'return once uploaded, without following delivery', false)
    .option(
      '--redis-url <url>',
      'Redis URL (default: MAILROOM_REDIS_URL, REDIS_URL or redis://127.0.0.1:6379)',
    )
    .option('--prefix <prefix>', 'queue key prefix (default {mailroom})')
    .action(async (opts: Omit<CampaignSendFlags, 'redisUrl'> & { redisUrl?: string }) => {
      process.exitCode = await campaignSendCommand(
        { ...opts, redisUrl: opts.redisUrl ?? defaultRedisUrl() },
        process.stdout,
        process.stderr,
      );
    });
  for (const action of ['status', 'pause', 'resume', 'cancel'] as const) {
    campaign
      .command(`${action} <id>`)
      .description(`${action === 'status' ? 'show' : action} a campaign (prints its state and counts)`)
      .option('--redis-url <url>', 'Redis URL')
      .option('--prefix <prefix>', 'queue key prefix (default {mailroom})')
      .action(async (id: string, opts: { redisUrl?: string; prefix?: string }) => {
        process.exitCode = await campaignControlCommand(
          action,
          id,
          {
            redisUrl: opts.redisUrl ?? defaultRedisUrl(),
            ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }),
          },
          process.stdout,
        );
      });
  }

  program
    .command('demo')
    .description(
      'run everything locally: Redis (private unless REDIS_URL is set), an SMTP sink, workers, a newsletter',
    )
    .option('--count <n>', 'recipients', positiveInt, 10_000)
    .option('--workers <n>', 'worker processes', positiveInt, 2)
    .option('--keep', 'keep running after the summary until Ctrl-C', false)
    .action(async (opts: { count: number; workers: number; keep: boolean }) => {
      const redisUrl = process.env.REDIS_URL ?? process.env.MAILROOM_REDIS_URL;
      process.exitCode = await demoCommand(
        { ...opts, ...(redisUrl ? { redisUrl } : {}) },
        process.stdout,
        process.stderr,
      );
    });

  registerSuppressionCommand(program, defaultRedisUrl);

  program
    .command('status')
    .description('the queue by state, and the rate limits in force (configured and after throttling cuts)')
    .option('--redis-url <url>', 'Redis URL')
    .option('--prefix <prefix>', 'queue key prefix (default {mailroom})')
    .option('--relays-file <path>', "the workers' relays file (default MAILROOM_RELAYS_FILE)")
    .action(async (opts: { redisUrl?: string; prefix?: string; relaysFile?: string }) => {
      const relaysFile = opts.relaysFile ?? process.env.MAILROOM_RELAYS_FILE;
      process.exitCode = await statusCommand(
        {
          redisUrl: opts.redisUrl ?? defaultRedisUrl(),
          ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }),
          ...(relaysFile ? { relaysFile } : {}),
        },
        process.stdout,
        process.stderr,
      );
    });
  registerApiCommand(program);
  registerApiKeyCommand(program, defaultRedisUrl);
  registerInboundCommand(program);

  await program.parseAsync(argv);
}
