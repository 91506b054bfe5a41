import { createReadStream, readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import {
  MailroomClient,
  recipientsFromCsv,
  recipientsFromJsonl,
  type CampaignRecipientInput,
} from '@mailroom/client';
import { ValidationError } from '@mailroom/core';
import type { RedisTarget } from '@mailroom/queue';
import { UsageError } from './send-command.js';

export interface CampaignSendFlags {
  template: string;
  recipients: string;
  name?: string;
  sendAt?: string;
  batchSize?: number;
  /** Return once uploaded instead of following delivery. */
  detach?: boolean;
  /** Redis: a URL, or a cluster or Sentinel spec (from MAILROOM_REDIS_*). */
  redisUrl: RedisTarget;
  prefix?: string;
}

function readTemplate(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--template: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`--template: ${path} is not valid JSON (${(err as Error).message})`);
  }
}

function recipientSource(path: string): AsyncIterable<CampaignRecipientInput> {
  const stream = path === '-' ? process.stdin : createReadStream(path);
  return /\.jsonl?$/i.test(path) || path.endsWith('.ndjson')
    ? recipientsFromJsonl(stream)
    : recipientsFromCsv(stream);
}

/** Counts the data lines of a recipient file up front, so the upload bar has a total (streams, never loads). */
async function countLines(path: string): Promise<number | undefined> {
  if (path === '-') return undefined;
  let lines = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (const byte of chunk) if (byte === 10) lines += 1;
  }
  return /\.jsonl?$/i.test(path) || path.endsWith('.ndjson') ? lines : Math.max(0, lines - 1);
}

/**
 * `mailroom campaign send`: uploads the template and streams the recipients in (CSV with a header row, or
 * JSON Lines), with a progress bar for the upload and one for delivery, then prints the final counts.
 * Exit 2 for bad input (each field named), 0 once every message reached a terminal state.
 */
export async function campaignSendCommand(
  flags: CampaignSendFlags,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  let template: unknown;
  try {
    template = readTemplate(flags.template);
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const sendAt = flags.sendAt === undefined ? undefined : Date.parse(flags.sendAt);
  if (sendAt !== undefined && Number.isNaN(sendAt)) {
    err.write(`--send-at: not a date (got "${flags.sendAt}"; use ISO 8601, e.g. 2026-12-01T09:00:00Z)\n`);
    return 2;
  }
  const total = await countLines(flags.recipients).catch(() => undefined);
  const client = new MailroomClient({
    redis: flags.redisUrl,
    ...(flags.prefix === undefined ? {} : { prefix: flags.prefix }),
  });
  const tty = Boolean((out as NodeJS.WriteStream).isTTY) && process.env.CI !== 'true';
  const bars = new cliProgress.MultiBar(
    {
      format: ' {label} [{bar}] {value}/{total} {extra}',
      hideCursor: true,
      noTTYOutput: !tty,
      notTTYSchedule: 2000,
      stream: out,
    },
    cliProgress.Presets.shades_classic,
  );
  try {
    await client.ready();
    const upload = bars.create(total ?? 0, 0, { label: 'upload  ', extra: '' });
    const receipt = await client.createCampaign(
      {
        ...(flags.name === undefined ? {} : { name: flags.name }),
        template,
        recipients: recipientSource(flags.recipients),
        ...(sendAt === undefined ? {} : { sendAt }),
      },
      {
        ...(flags.batchSize === undefined ? {} : { batchSize: flags.batchSize }),
        onProgress: (p) => {
          if (total === undefined) upload.setTotal(p.read);
          upload.update(p.read, { extra: `accepted ${p.accepted}, refused ${p.refused}` });
        },
      },
    );
    if (receipt.accepted === 0) {
      bars.stop();
      for (const r of receipt.refusals) err.write(`row ${r.row}: ${r.field}: ${r.message}\n`);
      err.write(`no recipient was accepted\n`);
      return 2;
    }
    if (!flags.detach) {
      const delivery = bars.create(receipt.accepted, 0, { label: 'delivery', extra: '' });
      for (;;) {
        const status = await client.campaignStatus(receipt.id);
        const { terminal } = status.counts;
        const finished = status.counts.accepted - status.counts.pending;
        delivery.update(finished, {
          extra: `delivered ${terminal.delivered}, bounced ${terminal.bounced}, other ${finished - terminal.delivered - terminal.bounced}`,
        });
        if (status.counts.pending === 0) break;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    bars.stop();
    for (const r of receipt.refusals) err.write(`row ${r.row}: ${r.field}: ${r.message}\n`);
    const status = await client.campaignStatus(receipt.id);
    out.write(
      `${JSON.stringify({ id: receipt.id, accepted: receipt.accepted, refused: receipt.refused, state: status.state, counts: status.counts })}\n`,
    );
    return 0;
  } catch (e) {
    bars.stop();
    if (e instanceof ValidationError) {
      for (const issue of e.issues) err.write(`template.${issue.field}: ${issue.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    await client.close();
  }
}

/** `mailroom campaign status|pause|resume|cancel <id>`: prints the campaign's state and counts as JSON. */
export async function campaignControlCommand(
  action: 'status' | 'pause' | 'resume' | 'cancel',
  id: string,
  flags: { redisUrl: RedisTarget; prefix?: string },
  out: NodeJS.WritableStream,
): Promise<number> {
  const client = new MailroomClient({
    redis: flags.redisUrl,
    ...(flags.prefix === undefined ? {} : { prefix: flags.prefix }),
  });
  try {
    if (action === 'pause') await client.pauseCampaign(id);
    if (action === 'resume') await client.resumeCampaign(id);
    if (action === 'cancel') await client.cancelCampaign(id);
    out.write(`${JSON.stringify(await client.campaignStatus(id))}\n`);
    return 0;
  } finally {
    await client.close();
  }
}
