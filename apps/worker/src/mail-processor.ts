import { DelayedError, type Job } from 'bullmq';
import {
  addressDomain,
  classifySmtpOutcome,
  createUnsubscribeToken,
  unsubscribeHeaders,
  type AmbiguityPolicy,
  type Classification,
  type SmtpObservation,
  type TerminalState,
  ValidationError,
  parseEnhancedStatus,
  parseMailbox,
} from '@mailroom/core';
import type { AttemptResult, WorkerMetrics } from '@mailroom/metrics';
import pLimit from 'p-limit';
import {
  ContentMissingError,
  SEND_JOB,
  isBatch,
  isCampaignMember,
  partRefs,
  resolvePart,
  type BatchJobData,
  type CampaignMemberPayload,
  type CampaignState,
  type CampaignStore,
  type ContentStore,
  type Ledger,
  type LedgerPayload,
  type MailJobData,
  type MailQueue,
  type OutcomeReport,
  type RateLimiter,
  type SendJobData,
  type SuppressionStore,
  suppressionScopeOf,
} from '@mailroom/queue';
import { encodeVerp, type VerpOptions } from '@mailroom/feedback';
import { compileMessage, compileTemplate, type CompiledTemplate, type DkimSigner } from '@mailroom/mime';
import { SmtpSendError } from '@mailroom/smtp';
import type { WebhookEmitter, WebhookEventInput } from '@mailroom/webhooks';
import type { Logger } from './logger.js';
import type { DomainScope, RelayHandle, RelayRouter } from './relay-router.js';
import { nextAttemptDelayMs, type RetryPolicyOptions } from './retry-policy.js';
import { coalescedSuppressionCheck } from './suppression-check.js';

/** What a finished job returns (the ledger holds the full record). */
export interface DeliveryResult {
  readonly outcome: TerminalState;
  /** True when this job found the message already finished and sent nothing. */
  readonly skipped?: boolean;
}

/** What a finished batch job returns: how its messages went (each has its own ledger record). */
export interface BatchResult {
  readonly finished: number;
  /** Messages that must wait (deferred, held) and went on as jobs of their own. */
  readonly leftBatch: number;
}

/** What a job's processor returns. */
export type MailJobResult = DeliveryResult | BatchResult;

/** What one delivery attempt of one message came to, before any BullMQ job is told. */
type Verdict =
  | { readonly kind: 'done'; readonly result: DeliveryResult }
  | { readonly kind: 'hold'; readonly until: number; readonly why: string }
  | { readonly kind: 'retry'; readonly error: TransientDeliveryError };

/** Thrown for a failure BullMQ should retry with Mailroom's backoff; carries the classification. */
export class TransientDeliveryError extends Error {
  override readonly name = 'TransientDeliveryError';
  constructor(
    readonly classification: Classification,
    readonly retryInMs: number,
    options?: { cause?: unknown },
  ) {
    super(`transient delivery failure (${classification.reason})`, options);
  }
}

export interface MailProcessorDeps {
  /** The relays, their health, routing and limit scopes. */
  readonly router: RelayRouter;
  /** Cluster-wide rate limits and quotas. */
  readonly limiter: RateLimiter;
  readonly content: ContentStore;
  readonly ledger: Ledger;
  readonly metrics: WorkerMetrics;
  readonly logger: Logger;
  readonly retry: RetryPolicyOptions;
  readonly configFaultPauseMs: number;
  readonly ambiguityPolicy: AmbiguityPolicy;
  /** How long a claim waits for an older attempt that may still be finishing (> the job lock duration). */
  readonly ambiguityGraceMs: number;
  /** True once the worker is shutting down: ledger write retries give up then. */
  readonly closing: () => boolean;
  readonly campaigns: CampaignStore;
  /** Where a message that leaves its batch goes on as a job of its own. */
  readonly queue: MailQueue;
  /** Messages of batches sent at the same time in this process (default 10). */
  readonly batchParallelism?: number;
  /** Checked right before every send: a suppressed recipient ends `suppressed`, never sent. */
  readonly suppressions: SuppressionStore;
  /** The return path names the message (VERP), so asynchronous bounces map back to it. */
  readonly verp?: VerpOptions;
  /** Signs every message whose From domain has a key (DKIM); none when undefined. */
  readonly dkim?: DkimSigner;
  /** Delivery events for the configured webhooks (none when undefined); `emit` never waits, never throws. */
  readonly webhooks?: Pick<WebhookEmitter, 'emit'>;
  /** Signs the one-click unsubscribe link of campaign messages (none when undefined). */
  readonly unsubscribe?: { readonly baseUrl: string; readonly secret: string; readonly mailto?: string };
}

/** How long a campaign's state (running, paused, cancelled) is trusted before it is read again. */
const CAMPAIGN_STATE_TTL_MS = 500;
/** Compiled templates kept per process. */
const TEMPLATE_CACHE_SIZE = 50;

const CONFIG_FAULT_KIND: Record<string, 'auth' | 'tls' | 'dns' | 'policy'> = {
  auth: 'auth',
  tls: 'tls',
  dns: 'dns',
};

/** The `reason` label of mailroom_relay_config_faults_total for a configuration fault's reply class. */
export function configFaultKind(replyClass: string): 'auth' | 'tls' | 'dns' | 'policy' {
  return CONFIG_FAULT_KIND[replyClass] ?? 'policy';
}
/** A send time at most this far ahead is reserved and slept until in place; a later one holds the message. */
const RESERVE_HORIZON_MS = 1000;
/**
 * ...and at most this many send intervals of the message's slowest scope ahead: each scope books a bounded
 * stretch of its future (a slow domain never holds many job slots), and a slower scope books further ahead
 * than a faster one it shares, so it keeps its share of it.
 */
const RESERVE_DEPTH = 32;
/** A message held by a rate comes back this long before its slot (at most half the horizon), to reserve it. */
const HOLD_LEAD_MS = 200;
/** A held message is held at least this long, so one waiting for a free reserving slot does not spin. */
const MIN_HOLD_MS = 100;
/** Ledger writes after a send are retried this long before the job is left to stalled-job recovery. */
const LEDGER_RETRY_LIMIT_MS = 5 * 60 * 1000;

/**
 * The job processor: one message, one SMTP transaction, every step recorded in the ledger.
 * 1. claim: the ledger fences this attempt; a message already finished is acknowledged without sending;
 * 2. send: the body is streamed, and the moment it has been fully handed over is recorded (RFC 1047 window);
 * 3. record: the outcome is committed (retried, never turned into a failed send) BEFORE the job is acknowledged.
 * Outcomes: 250 delivered; permanent bounced at once; transient or throttled retried with capped backoff until
 * the deadline, then expired; a configuration fault bounces nothing: the message is released unattempted and
 * the relay paused.
 */
export function createMailProcessor(deps: MailProcessorDeps) {
  const { router, limiter, content, ledger, metrics, logger } = deps;
  const isSuppressed = coalescedSuppressionCheck(deps.suppressions);
  /**
   * Job slots reserving a send time or sleeping until it now: at most half the slots, and at most half of
   * those for one recipient domain scope, so a slow domain never holds the slots the others need.
   */
  let reservers = 0;
  const reserversByDomain = new Map<string, number>();
  const maxReservers = Math.max(1, Math.floor((deps.batchParallelism ?? 10) / 2));
  const maxReserversPerDomain = Math.max(1, Math.ceil(maxReservers / 2));

  async function record(id: string, token: string, report: OutcomeReport): Promise<string> {
    const started = Date.now();
    for (let delay = 50; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return await ledger.recordOutcome(id, token, report);
      } catch (err) {
        metrics.ledgerWriteRetries.inc();
        if (Date.now() - started > LEDGER_RETRY_LIMIT_MS || deps.closing()) throw err;
        logger.warn({ msgId: id, err: { message: (err as Error).message } }, 'ledger write failed, retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  function terminal(
    id: string,
    outcome: TerminalState,
    facts: Record<string, unknown> = {},
    message?: LedgerPayload,
    smtp?: WebhookEventInput['smtp'],
  ): Verdict {
    metrics.observeTerminal(outcome, message && { to: message.to.address, acceptedAt: message.acceptedAt });
    logger.info({ msgId: id, outcome, ...facts }, 'message finished');
    if (message) emitEvent(outcome, id, message, facts, smtp);
    return { kind: 'done', result: { outcome } };
  }

  /** The webhook event of a message's outcome (nothing without webhooks); never waits, never throws. */
  function emitEvent(
    type: WebhookEventInput['type'],
    id: string,
    message: LedgerPayload,
    facts: Record<string, unknown>,
    smtp?: WebhookEventInput['smtp'],
  ): void {
    deps.webhooks?.emit({
      type,
      messageId: id,
      messageIdHeader: message.messageIdHeader,
      campaign: isCampaignMember(message) ? message.campaign : undefined,
      recipient: message.to.address,
      relay: typeof facts.relay === 'string' ? facts.relay : undefined,
      reason: typeof facts.reason === 'string' ? facts.reason : undefined,
      attempt: typeof facts.attempt === 'number' ? facts.attempt : undefined,
      smtp,
    });
  }

  const hold = (until: number, why: string): Verdict => ({ kind: 'hold', until, why });
  const done = (result: DeliveryResult): Verdict => ({ kind: 'done', result });

  const campaignStates = new Map<string, { state: CampaignState | undefined; at: number }>();
  async function campaignState(campaign: string): Promise<CampaignState | undefined> {
    const cached = campaignStates.get(campaign);
    if (cached && Date.now() - cached.at < CAMPAIGN_STATE_TTL_MS) return cached.state;
    const state = await deps.campaigns.state(campaign);
    campaignStates.set(campaign, { state, at: Date.now() });
    return state;
  }

  /** A campaign's template, compiled once per process, and its envelope sender. */
  type TemplateEntry = {
    compiled: CompiledTemplate;
    from: string;
    tags: readonly string[];
    list: string | undefined;
  };
  const templates = new Map<string, TemplateEntry>();
  async function templateOf(campaign: string): Promise<TemplateEntry> {
    const cached = templates.get(campaign);
    if (cached) return cached;
    const json = await deps.campaigns.template(campaign);
    if (json === undefined) throw new ContentMissingError([`campaign:${campaign}`]);
    const template = JSON.parse(json) as { from: unknown; tags?: unknown; list?: unknown };
    const tags = Array.isArray(template.tags) ? template.tags.filter((t) => typeof t === 'string') : [];
    const entry = {
      compiled: compileTemplate(template, {
        feedbackId: { campaign, tag: tags[0] ?? (await deps.campaigns.tags(campaign))[0] },
      }),
      from: parseMailbox(template.from, 'from').address,
      tags,
      list: typeof template.list === 'string' ? template.list : undefined,
    };
    if (templates.size >= TEMPLATE_CACHE_SIZE) templates.delete(templates.keys().next().value!);
    templates.set(campaign, entry);
    return entry;
  }

  /**
   * One attempt at one message: claim, compose, send, record. `lastJobAttempt`: the BullMQ job carrying it
   * has no attempt left after this one; `returning`: it comes back after a wait (held, deferred, scheduled),
   * so it takes no new place in line behind the messages held by the limits.
   */
  async function deliver(
    id: string,
    fence: string,
    lastJobAttempt: boolean,
    returning = false,
  ): Promise<Verdict> {
    if (router.allOpen()) {
      return hold(router.nextOpening(router.relays), 'every relay is paused (circuit open)');
    }

    const claim = await ledger.claim(id, fence, {
      graceMs: deps.ambiguityGraceMs,
      policy: deps.ambiguityPolicy,
    });
    switch (claim.kind) {
      case 'done':
        metrics.duplicatesSuppressed.inc();
        logger.info({ msgId: id, state: claim.state }, 'message already finished: not sent again');
        return done({ outcome: claim.state, skipped: true });
      case 'ended':
        if (claim.state === 'ambiguous') metrics.ambiguous.inc({ action: 'stopped' });
        return terminal(id, claim.state, { reason: 'ended_at_claim' });
      case 'wait':
        return hold(Date.now() + claim.ms, 'an earlier attempt may still be finishing');
      case 'missing':
        logger.error({ msgId: id }, 'job without a ledger record: nothing to send');
        metrics.observeTerminal('failed');
        return done({ outcome: 'failed' });
      case 'send':
        break;
    }
    if (claim.resend === 'ambiguous') {
      metrics.ambiguous.inc({ action: 'resent' });
      logger.warn(
        { msgId: id },
        'earlier attempt sent the body and got no reply: sending again, same Message-ID',
      );
    }
    const data = JSON.parse(claim.payload) as LedgerPayload;
    if (isCampaignMember(data)) {
      const state = await campaignState(data.campaign);
      if (state === 'paused') {
        await record(id, fence, { outcome: 'released' });
        return hold(Date.now() + 1000, 'campaign paused');
      }
      if (state === 'cancelled') {
        await record(id, fence, { outcome: 'cancelled', reason: 'campaign_cancelled' });
        return terminal(id, 'cancelled', { reason: 'campaign_cancelled' }, data);
      }
    }

    // The suppression list is read again right before sending: an unsubscribe or a bounce that arrived
    // after the message was accepted still stops it.
    const sender = await senderOf(data);
    const suppressed = await isSuppressed(suppressionScopeOf(sender.from), data.to.address);
    if (suppressed) {
      await record(id, fence, { outcome: 'suppressed', reason: suppressed.reason });
      return terminal(id, 'suppressed', { reason: suppressed.reason, scope: suppressed.scope }, data);
    }

    // Routing comes before composing: a message with no relay to go to costs no CPU.
    const candidates = router.candidates(sender.domain, sender.tags);
    const domain = router.domainScope(addressDomain(data.to.address));
    const campaign = isCampaignMember(data) ? data.campaign : undefined;
    const tried = new Set<string>();
    let relay = router.pick(candidates, tried);
    if (relay === undefined) {
      await record(id, fence, { outcome: 'released' });
      return hold(router.nextOpening(candidates), 'no relay available (circuits open)');
    }

    // A message held back by a limit spends no attempt and is not composed. One that gets a send time is
    // composed and signed while it waits for it, so that the time between its slot and the relay having it is
    // the SMTP transaction alone (a spread there would bunch sends up at the relay).
    let composing: Promise<Buffer> | undefined;
    const held = await takeSlot(id, fence, relay, domain, campaign, data, returning, () => {
      composing = composeSigned(data);
      return composing;
    });
    if (held) return held;

    let raw: Buffer;
    try {
      raw = await (composing ?? composeSigned(data));
    } catch (err) {
      // Neither can get better by retrying: the message ends failed, with the reason in its status.
      if (err instanceof ContentMissingError) {
        logger.error({ msgId: id, err }, 'message content is missing');
        await record(id, fence, { outcome: 'failed', reason: 'content_missing' });
        return terminal(id, 'failed', { reason: 'content_missing' }, data);
      }
      if (err instanceof ValidationError) {
        logger.error({ msgId: id, fields: err.issues.map((i) => i.field) }, 'message cannot be encoded');
        await record(id, fence, { outcome: 'failed', reason: 'unencodable', response: err.message });
        return terminal(id, 'failed', { reason: 'unencodable' }, data);
      }
      throw err;
    }

    // The ledger learns that the body is complete BEFORE the final dot can reach the relay. A crash before
    // that write leaves a message the relay never accepted (safe to send again); a crash after it is
    // counted as ambiguous. Never the other way round.
    let bodyWritten = false;
    const beforeFinalDot = async (): Promise<void> => {
      if (!(await ledger.markBodyWritten(id, fence))) {
        throw new Error('another attempt owns this message now: final dot withheld');
      }
      bodyWritten = true;
    };

    const returnPath = deps.verp ? encodeVerp(id, deps.verp) : sender.from;
    for (;;) {
      const current: RelayHandle = relay;
      const started = performance.now();
      try {
        const send = () =>
          current.sender.send({ from: returnPath, to: data.to.address }, raw, { beforeFinalDot });
        const accepted = await (domain.local ? domain.local(send) : send());
        current.circuit.success();
        observeAttempt('delivered', '2xx', started, data, current.name);
        metrics.observeReply({
          command: 'DATA',
          code: accepted.responseCode,
          enhanced: parseEnhancedStatus(accepted.response),
          relay: current.name,
        });
        logger.debug(
          { msgId: id, rcpt: data.to.address, response: accepted.response },
          'relay accepted message',
        );
        const written = await record(id, fence, {
          outcome: 'delivered',
          code: accepted.responseCode,
          response: accepted.response,
        });
        if (written === 'terminal') {
          // Another attempt finished first (a resend after a lost reply): this delivery is a duplicate.
          metrics.duplicatesDelivered.inc();
          logger.warn({ msgId: id }, 'delivered a message that had already finished (counted duplicate)');
          return done({ outcome: 'delivered', skipped: true });
        }
        return terminal(
          id,
          'delivered',
          { attempt: claim.attempt, responseCode: accepted.responseCode, relay: current.name },
          data,
          {
            code: accepted.responseCode,
            enhanced: parseEnhancedStatus(accepted.response),
            response: accepted.response,
          },
        );
      } catch (err) {
        if (!(err instanceof SmtpSendError)) throw err;
        const observation = { ...err.observation, bodyWritten };
        const c = classifySmtpOutcome(observation);
        metrics.observeReply({
          command: observation.command,
          code: observation.responseCode,
          enhanced: c.enhancedStatus,
          relay: current.name,
        });
        const reply = {
          ...(observation.responseCode === undefined ? {} : { code: observation.responseCode }),
          ...(c.enhancedStatus === undefined ? {} : { enhanced: c.enhancedStatus }),
          ...(observation.response === undefined ? {} : { response: observation.response }),
          reason: c.reason,
        };
        const facts = {
          msgId: id,
          attempt: claim.attempt,
          relay: current.name,
          outcome: c.outcome,
          reason: c.reason,
          responseCode: observation.responseCode,
          enhancedStatus: c.enhancedStatus,
          code: observation.code,
          command: observation.command,
        };

        // The relay failed before the message went out: another relay takes it within this attempt; if
        // none can, a failure to connect spends no attempt (the message waits for a relay to come back).
        const fault = relayFault(c, observation);
        if (fault !== undefined) {
          if (fault.phase === 'connect') {
            if (fault.kind === 'config') {
              metrics.configFaults.inc({ reason: configFaultKind(c.replyClass) });
              logger.error(facts, 'relay configuration fault: relay paused, message kept');
            }
            current.circuit.failure(
              fault.kind,
              c.reason,
              fault.kind === 'config' ? deps.configFaultPauseMs : undefined,
            );
            observeAttempt(
              fault.kind === 'config' ? 'paused' : 'error',
              c.replyClass,
              started,
              data,
              current.name,
            );
          } else {
            observeAttempt('error', c.replyClass, started, data, current.name);
          }
          tried.add(current.name);
          const next = router.pick(candidates, tried);
          if (next !== undefined) {
            metrics.observeReroute(current.name);
            logger.warn(
              { ...facts, to: next.name },
              'relay failed before the body: message moved to another relay',
            );
            relay = next;
            const heldNext = await takeSlot(id, fence, next, domain, campaign, data, true);
            if (heldNext) return heldNext;
            continue;
          }
          if (fault.phase === 'connect') {
            await record(id, fence, { outcome: 'released', ...reply });
            logger.warn(facts, 'relay unreachable: message held, no attempt spent');
            return hold(
              Math.max(router.nextOpening(candidates), Date.now() + 1000),
              'no relay available (circuits open)',
            );
          }
        } else if (observation.responseCode !== undefined) {
          current.circuit.success();
        }
        if (c.outcome === 'throttled') await throttled(current, domain, observation);

        switch (c.outcome) {
          case 'delivered':
          case 'permanent': {
            observeAttempt('bounced', c.replyClass, started, data, current.name);
            logger.debug(
              { ...facts, rcpt: data.to.address, response: observation.response },
              'relay refused message',
            );
            await record(id, fence, { outcome: 'bounced', ...reply });
            return terminal(
              id,
              'bounced',
              {
                responseCode: observation.responseCode,
                enhancedStatus: c.enhancedStatus,
                attempt: claim.attempt,
                relay: current.name,
                reason: c.reason,
              },
              data,
              { code: reply.code, enhanced: reply.enhanced, response: reply.response },
            );
          }
          case 'config': {
            // A configuration fault after the connection phase (relay denied at MAIL or RCPT).
            observeAttempt('paused', c.replyClass, started, data, current.name);
            metrics.configFaults.inc({ reason: configFaultKind(c.replyClass) });
            logger.error(facts, 'relay configuration fault: relay paused, message kept');
            current.circuit.failure('config', c.reason, deps.configFaultPauseMs);
            await record(id, fence, { outcome: 'released', ...reply });
            return hold(
              Math.max(router.nextOpening(candidates), Date.now() + 1000),
              'relay paused after a configuration fault',
            );
          }
          case 'ambiguous':
            metrics.ambiguous.inc({ action: deps.ambiguityPolicy === 'stop' ? 'stopped' : 'resent' });
            if (deps.ambiguityPolicy === 'stop') {
              observeAttempt('error', c.replyClass, started, data, current.name);
              logger.warn(facts, 'body sent, no reply: stopping (at-most-once policy)');
              await record(id, fence, { outcome: 'ambiguous', ...reply });
              return terminal(
                id,
                'ambiguous',
                { reason: c.reason, attempt: claim.attempt, relay: current.name },
                data,
                { code: reply.code, enhanced: reply.enhanced, response: reply.response },
              );
            }
            logger.warn(facts, 'body sent, no reply: will resend with the same Message-ID');
            return retryLater(
              lastJobAttempt,
              id,
              fence,
              claim.attempt,
              data,
              c,
              reply,
              facts,
              started,
              err,
              current,
            );
          case 'transient':
          case 'throttled':
            return retryLater(
              lastJobAttempt,
              id,
              fence,
              claim.attempt,
              data,
              c,
              reply,
              facts,
              started,
              err,
              current,
            );
        }
      }
    }
  }

  /** A `send` job: one message; waiting and retrying are BullMQ's (delayed job, backoff). */
  async function processSend(job: Job<SendJobData>, token?: string): Promise<DeliveryResult> {
    const fence = token ?? `${job.id}:${job.attemptsStarted}`;
    const lastJobAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const returning = job.attemptsStarted > 1 || (job.opts.delay ?? 0) > 0;
    const verdict = await deliver(job.data.id, fence, lastJobAttempt, returning);
    switch (verdict.kind) {
      case 'done':
        return verdict.result;
      case 'retry':
        throw verdict.error;
      case 'hold':
        await job.moveToDelayed(Math.max(verdict.until, Date.now() + 1), token);
        throw new DelayedError(verdict.why);
    }
  }

  const batchSlots = pLimit(deps.batchParallelism ?? 10);

  /**
   * A `send-batch` job: several messages of one campaign, each its own attempt (own fence, ledger record,
   * outcome). A message that must wait (deferred, throttled, held) leaves the batch: it goes on as a `send`
   * job of its own, delayed to when it may go, so the batch never waits for its slowest member.
   */
  async function processBatch(job: Job<BatchJobData>, token?: string): Promise<BatchResult> {
    const base = token ?? `${job.id}:${job.attemptsStarted}`;
    const state = await campaignState(job.data.campaign);
    if (state === 'paused') {
      await job.moveToDelayed(Date.now() + 1000, token);
      throw new DelayedError('campaign paused');
    }
    const leave: { id: string; until: number }[] = [];
    let finished = 0;
    await Promise.all(
      job.data.ids.map((id) =>
        batchSlots(async () => {
          const verdict = await deliver(id, `${base}:${id}`, false, job.attemptsStarted > 1);
          if (verdict.kind === 'done') finished += 1;
          else if (verdict.kind === 'hold') leave.push({ id, until: verdict.until });
          else leave.push({ id, until: Date.now() + verdict.error.retryInMs });
        }),
      ),
    );
    if (leave.length > 0) {
      const now = Date.now();
      await deps.queue.addBulk(
        leave.map(
          (l) =>
            ({
              name: SEND_JOB,
              data: { id: l.id },
              opts: { jobId: l.id, delay: Math.max(0, l.until - now) },
            }) as const,
        ),
      );
    }
    return { finished, leftBatch: leave.length };
  }

  return async function processMail(
    job: Job<MailJobData>,
    token?: string,
  ): Promise<DeliveryResult | BatchResult> {
    const data = job.data;
    if (isBatch(data)) return processBatch(job as Job<BatchJobData>, token);
    return processSend(job as Job<SendJobData>, token);
  };

  /** A transient outcome: deferred with backoff, or expired when no time (or attempt) is left. */
  async function retryLater(
    lastJobAttempt: boolean,
    id: string,
    fence: string,
    attempt: number,
    data: LedgerPayload,
    c: Classification,
    reply: Omit<OutcomeReport, 'outcome'>,
    facts: Record<string, unknown>,
    started: number,
    cause: unknown,
    relay: RelayHandle,
  ): Promise<Verdict> {
    // A reply (even a 5xx rate limit) is a deferral; `error` is an attempt that got no SMTP reply.
    const replied = c.replyClass === '4xx' || c.replyClass === '5xx';
    observeAttempt(replied ? 'deferred' : 'error', c.replyClass, started, data, relay.name);
    const lastAttempt = lastJobAttempt;
    const delay = lastAttempt ? null : nextAttemptDelayMs(attempt, data.expiresAt, Date.now(), deps.retry);
    if (delay === null) {
      const reason = lastAttempt ? 'max_attempts' : 'max_age';
      await record(id, fence, { outcome: 'expired', ...reply, reason });
      return terminal(id, 'expired', { reason, responseCode: reply.code, attempt, relay: relay.name }, data, {
        code: reply.code,
        enhanced: reply.enhanced,
        response: reply.response,
      });
    }
    if (c.outcome === 'throttled') {
      metrics.observeRateLimitWait({ scope: 'relay', seconds: delay / 1000, to: data.to.address });
    }
    await record(id, fence, { outcome: 'deferred', ...reply });
    logger.info({ ...facts, retryInMs: delay }, 'message deferred');
    emitEvent(
      'deferred',
      id,
      data,
      { reason: c.reason, attempt, relay: relay.name },
      {
        code: reply.code,
        enhanced: reply.enhanced,
        response: reply.response,
      },
    );
    return { kind: 'retry', error: new TransientDeliveryError(c, delay, { cause }) };
  }

  /** The message composed and, when its From domain has a key, DKIM-signed. */
  async function composeSigned(data: LedgerPayload): Promise<Buffer> {
    const raw = await compose(data);
    // Signed once per attempt, after composing and before the wire; the private-key step runs on libuv's
    // thread pool, so the event loop keeps serving other sends meanwhile.
    return deps.dkim ? (await deps.dkim.signAsync(raw)).raw : raw;
  }

  /**
   * The message as it goes on the wire, through the compiled-message path. Byte-identical on every
   * attempt: the Message-ID and the Date (the moment of acceptance) come from the ledger record.
   */
  async function compose(data: LedgerPayload): Promise<Buffer> {
    if (isCampaignMember(data)) return composeMember(data);
    const loaded = await content.load(partRefs(data));
    const raw = compileMessage(
      {
        from: data.from,
        to: data.to,
        ...(data.replyTo ? { replyTo: data.replyTo } : {}),
        subject: data.subject,
        ...(data.text ? { text: resolvePart(data.text, loaded) } : {}),
        ...(data.html ? { html: resolvePart(data.html, loaded) } : {}),
        headers: data.headers,
        attachments: data.attachments.map((a) => ({
          filename: a.filename,
          contentType: a.contentType,
          ...(a.contentId === undefined ? {} : { contentId: a.contentId }),
          content: resolvePart(a.content, loaded),
          size: a.size,
        })),
        tags: data.tags,
      },
      {
        messageId: data.messageIdHeader,
        date: new Date(data.acceptedAt),
        maxMessageBytes: Number.MAX_SAFE_INTEGER,
      },
    );
    return raw;
  }

  /** A campaign message: the campaign's compiled template, filled in for this recipient. */
  async function composeMember(data: CampaignMemberPayload): Promise<Buffer> {
    const template = await templateOf(data.campaign);
    return template.compiled.render({
      to: data.to,
      messageId: data.messageIdHeader,
      date: new Date(data.acceptedAt),
      vars: data.vars,
      ...(deps.unsubscribe ? { headers: unsubscribeFor(data.to.address, template) } : {}),
    });
  }

  /**
   * RFC 8058 one-click unsubscribe for a campaign message: a token signed for this recipient, the list
   * (the template's `list`, else the sender scope) and the sender scope, so the endpoint needs no lookup.
   */
  function unsubscribeFor(address: string, template: TemplateEntry): Record<string, string> {
    const u = deps.unsubscribe!;
    const scope = suppressionScopeOf(template.from);
    const token = createUnsubscribeToken({ secret: u.secret, address, list: template.list ?? scope, scope });
    return {
      ...unsubscribeHeaders({
        baseUrl: u.baseUrl,
        token,
        ...(u.mailto === undefined ? {} : { mailto: u.mailto }),
      }),
    };
  }

  /** The envelope sender, its domain and the tags a message is routed by. */
  async function senderOf(
    data: LedgerPayload,
  ): Promise<{ from: string; domain: string; tags: readonly string[] }> {
    if (isCampaignMember(data)) {
      const template = await templateOf(data.campaign);
      return { from: template.from, domain: addressDomain(template.from), tags: template.tags };
    }
    return { from: data.from.address, domain: addressDomain(data.from.address), tags: data.tags };
  }

  /**
   * Takes a send slot under the relay's, the recipient domain's and the campaign's limits. A send time up to
   * RESERVE_HORIZON_MS (and RESERVE_DEPTH intervals) ahead is reserved in every scope at once and slept
   * until here, and the message then goes without asking again; at most `maxReservers` of this process's
   * job slots do that at a time. Undefined when the message may go (now, after the sleep); otherwise nothing
   * was reserved and the message is handed back unattempted, held until a little before its own slot, so it
   * is back in time to reserve it (one that came back for its slot and found no slot free to wait in is
   * asked back at the next free time, without a new place in line). `whileWaiting` runs once a send time is
   * reserved, alongside the wait for it (its failure is the caller's to read).
   */
  async function takeSlot(
    id: string,
    fence: string,
    relay: RelayHandle,
    domain: DomainScope,
    campaign: string | undefined,
    data: LedgerPayload,
    returning: boolean,
    whileWaiting?: () => Promise<unknown>,
  ): Promise<Verdict | undefined> {
    const scopes = router.scopesFor(relay, domain, campaign);
    if (scopes.length === 0) return undefined;
    const key = domain.scope.name;
    const reserving = reservers < maxReservers && (reserversByDomain.get(key) ?? 0) < maxReserversPerDomain;
    if (reserving) {
      reservers += 1;
      reserversByDomain.set(key, (reserversByDomain.get(key) ?? 0) + 1);
    }
    let slot;
    try {
      slot = await limiter.acquire(scopes, Date.now(), reserving ? RESERVE_HORIZON_MS : 0, {
        returning: returning && !reserving,
        depth: RESERVE_DEPTH,
        leadMs: HOLD_LEAD_MS,
      });
      if (slot.allowed) {
        // A connection ready for it when its time comes, rather than set up then.
        if (slot.waitMs >= 1) relay.sender.warm?.(relay.sender.sending + 2);
        const work = whileWaiting?.().catch(() => undefined);
        // A bounded sleep to a known moment, not a spin.
        const ms = Math.round(slot.waitMs);
        if (ms >= 1) await new Promise((r) => setTimeout(r, ms));
        await work;
      }
    } finally {
      if (reserving) {
        reservers -= 1;
        const left = (reserversByDomain.get(key) ?? 1) - 1;
        if (left > 0) reserversByDomain.set(key, left);
        else reserversByDomain.delete(key);
      }
    }
    if (slot.allowed) return undefined;
    await record(id, fence, { outcome: 'released' });
    metrics.observeRateLimitWait({ scope: 'local', seconds: slot.waitMs / 1000, to: data.to.address });
    logger.debug({ msgId: id, scope: slot.scope, kind: slot.kind, waitMs: slot.waitMs }, 'held by a limit');
    const back = slot.kind === 'rate' ? Math.max(slot.waitMs, MIN_HOLD_MS) : slot.waitMs;
    return hold(Date.now() + back, `held by the ${slot.kind} limit of ${slot.scope}`);
  }

  /**
   * A throttling reply cuts the rate of whoever said it: the relay when it answered before the recipient
   * was named (greeting, EHLO, AUTH, MAIL FROM), the recipient's domain group when it answered later (RCPT,
   * DATA, or a 421 that closed the connection there, which the senders report at CONN).
   */
  async function throttled(relay: RelayHandle, domain: DomainScope, observation: SmtpObservation) {
    const command = (observation.command ?? '').toUpperCase();
    const relays = observation.connecting === true || command === 'MAIL FROM';
    const scope = relays ? relay.scope.name : domain.scope.name;
    try {
      const factor = await limiter.throttled(scope);
      logger.warn({ scope, factor }, 'throttled: rate cut');
    } catch (err) {
      logger.warn({ scope, err: { message: (err as Error).message } }, 'could not record a throttle');
    }
  }

  function observeAttempt(
    result: AttemptResult,
    replyClass: string,
    started: number,
    data: LedgerPayload,
    relay: string,
  ): void {
    metrics.observeAttempt({
      result,
      replyClass,
      to: data.to.address,
      seconds: (performance.now() - started) / 1000,
      relay,
    });
  }
}

/**
 * Whether a failed attempt failed because of the relay rather than the message, before any of the body went
 * out (so another relay may take it at once):
 * - `connect`: the connection phase failed (refused, unreachable, timed out, TLS or AUTH refused, 421 at
 *   the greeting); counted towards the relay's circuit, and no attempt is spent when no relay is left;
 * - `transaction`: an established connection died without a reply and before the body; moved to another
 *   relay when there is one, otherwise an ordinary deferral.
 */
function relayFault(
  c: Classification,
  observation: SmtpObservation,
): { phase: 'connect' | 'transaction'; kind: 'connect' | 'config' } | undefined {
  if (observation.bodyWritten) return undefined;
  if (observation.code === 'ECONNECTION' && observation.command === 'API') return undefined; // shutting down
  const inConnection = observation.connecting === true;
  if (c.outcome === 'config') return inConnection ? { phase: 'connect', kind: 'config' } : undefined;
  if (c.outcome !== 'transient' && c.outcome !== 'throttled') return undefined;
  if (inConnection) return { phase: 'connect', kind: 'connect' };
  // No reply at all, or 421 "closing the channel" (a relay shutting down), before the body: the relay's
  // trouble. A 421 that asks to slow down (4.7.x) is a throttle, handled as one.
  if (observation.responseCode === undefined) return { phase: 'transaction', kind: 'connect' };
  if (observation.responseCode === 421 && c.outcome === 'transient')
    return { phase: 'transaction', kind: 'connect' };
  return undefined;
}

/** BullMQ backoff strategy: the delay the processor computed for this failure (see TransientDeliveryError). */
export function mailBackoffStrategy(_attemptsMade: number, _type?: string, err?: Error): number {
  if (err instanceof TransientDeliveryError) return err.retryInMs;
  // An unexpected error (Redis hiccup, bug): retry soon, BullMQ's attempts bound it.
  return 5000;
}
