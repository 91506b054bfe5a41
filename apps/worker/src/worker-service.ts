import { Worker } from 'bullmq';
import { Registry } from 'prom-client';
import { createWorkerMetrics, type WorkerMetrics } from '@mailroom/metrics';
import { ConfigError, classifySmtpOutcome } from '@mailroom/core';
import {
  CampaignStore,
  ContentStore,
  Ledger,
  MAIL_QUEUE,
  RateLimiter,
  SuppressionStore,
  asStoreConnection,
  createMailQueue,
  createRedisConnection,
  describeRedisTarget,
  isClusterConnection,
  redisConnectionReady,
  redisServers,
  type MailJobData,
} from '@mailroom/queue';
import { PipeliningSender, SmtpSendError, createSender } from '@mailroom/smtp';
import { startWebhooks, type Webhooks } from '@mailroom/webhooks';
import type { WorkerConfig } from './config.js';
import { startHealthServer, type HealthServer } from './health-server.js';
import { startQueueGauges, type QueueGauges } from './queue-gauges.js';
import type { Logger } from './logger.js';
import {
  configFaultKind,
  createMailProcessor,
  mailBackoffStrategy,
  type MailJobResult,
} from './mail-processor.js';
import { Reconciler } from './reconciler.js';
import { CampaignFeeder } from './campaign-feeder.js';
import { checkRedisDurability } from './redis-guard.js';
import { RelayCircuit } from './relay-circuit.js';
import { RelayRouter } from './relay-router.js';
import { Watchdog } from './watchdog.js';
import { VERSION } from './version.js';

export interface WorkerServiceDeps {
  logger: Logger;
  /** Registry for this worker's metrics (default: a new one). */
  registry?: Registry;
  /**
   * Called when the watchdog finds this worker idle while jobs wait. Default: log and exit with code 70 so
   * the supervisor restarts the process (a fresh process gets fresh Redis connections).
   */
  onStuck?: (idleMs: number, waiting: number) => void;
}

export interface WorkerService {
  readonly worker: Worker<MailJobData, MailJobResult>;
  readonly metrics: WorkerMetrics;
  readonly registry: Registry;
  readonly ledger: Ledger;
  readonly reconciler: Reconciler | undefined;
  /** The /healthz, /readyz, /metrics listener, when enabled. */
  readonly httpUrl: string | undefined;
  /**
   * Graceful stop: take no new jobs, let SMTP transactions in flight finish (at most `timeoutMs`, default the
   * configured shutdown timeout; jobs still running then are left to BullMQ's stalled-job recovery), then
   * close the SMTP pool, the listener and Redis.
   */
  close(timeoutMs?: number): Promise<{ drained: boolean }>;
}

const READY_CACHE_MS = 10_000;

/** Wires config -> Redis -> relay pool -> BullMQ Worker -> metrics and health listener. */
export async function startWorkerService(
  config: WorkerConfig,
  deps: WorkerServiceDeps,
): Promise<WorkerService> {
  const logger = deps.logger;
  const registry = deps.registry ?? new Registry();
  const metrics = createWorkerMetrics({
    registry,
    version: VERSION,
    relays: config.routing.relays.map((r) => r.name),
    domainGroups: [...config.routing.domainGroups.map((g) => g.name), 'other'],
    domains: config.metricDomains,
  });
  metrics.concurrency.set(config.concurrency);

  for (const relay of config.routing.relays) {
    if (!relay.verifyCertificates) {
      logger.warn({ relay: relay.name }, 'TLS certificate verification of the relay is OFF');
    }
    if (relay.tlsMode === 'none') {
      logger.warn({ relay: relay.name }, 'relay connection without TLS: messages travel in the clear');
    }
  }

  // Workers keep retrying Redis forever (BullMQ requires maxRetriesPerRequest: null for its blocking calls);
  // on a cluster they ride through a failover the same way (see createRedisConnection).
  const connection = createRedisConnection(config.redis, {
    maxRetriesPerRequest: null,
    connectionName: 'mailroom:worker',
  });
  const redis = asStoreConnection(connection);
  redis.on('error', (err) => logger.warn({ err: { message: err.message } }, 'redis connection error'));
  redis.on('node error', (err: Error, node: string) =>
    logger.warn({ err: { message: err.message }, node }, 'redis cluster node error'),
  );
  redis.on('ready', () => metrics.redisConnected.set(1));
  redis.on('close', () => metrics.redisConnected.set(0));

  // Every server must keep Mailroom's data; on a cluster that is every node (a replica becomes a master).
  if (isClusterConnection(connection)) await redisConnectionReady(connection);
  const durability = (
    await Promise.all(
      redisServers(connection).map(async (server) => {
        const issues = await checkRedisDurability(server);
        if (!isClusterConnection(connection)) return issues;
        const at = `${server.options.host ?? ''}:${server.options.port ?? ''}`;
        return issues.map((i) => ({ field: `${i.field} (${at})`, message: i.message }));
      }),
    )
  ).flat();
  if (durability.length > 0) {
    if (!config.redisAllowUnsafe) {
      redis.disconnect();
      throw new ConfigError(durability);
    }
    for (const issue of durability) {
      logger.warn(
        { setting: issue.field },
        `unsafe Redis allowed by MAILROOM_REDIS_ALLOW_UNSAFE: ${issue.field} ${issue.message}`,
      );
    }
  }

  const relays = config.routing.relays.map((definition) => {
    const sender = createSender(definition, config.sender);
    metrics.trackPool(
      {
        size: definition.maxConnections,
        inFlight: () => sender.sending,
        ...(sender instanceof PipeliningSender ? { openConnections: () => sender.connections } : {}),
      },
      definition.name,
    );
    const circuit = new RelayCircuit(definition.name, {
      ...config.routing.circuit,
      probe: () => sender.verify(),
    });
    metrics.trackCircuit(() => !circuit.isAvailable(), definition.name);
    return { name: definition.name, definition, sender, circuit };
  });
  const limiter = new RateLimiter(redis, config.prefix, config.routing.adaptive);
  const router = new RelayRouter(config.routing, relays, limiter);
  metrics.trackRates(() => router.currentRates('relay'), 'relay');
  metrics.trackRates(() => router.currentRates('domain_group'), 'domain_group');
  const content = new ContentStore(redis, config.prefix);
  const ledger = new Ledger(redis, {
    prefix: config.prefix,
    retentionSeconds: config.ledgerRetentionSeconds,
  });
  let closingFlag = false;
  const queue = createMailQueue(redis, { prefix: config.prefix });
  const campaigns = new CampaignStore(redis, config.prefix);
  // Events for the configured webhooks: emitted by the processor, queued in Redis, delivered by this and
  // every other worker process. Nothing at all when no endpoint is configured.
  const webhooks: Webhooks | undefined =
    config.webhooks.length > 0
      ? await startWebhooks({
          redis,
          prefix: config.prefix,
          endpoints: config.webhooks,
          registry,
          logger: logger.child({ component: 'webhooks' }),
          concurrency: config.webhookConcurrency,
        })
      : undefined;

  const processor = createMailProcessor({
    router,
    limiter,
    content,
    ledger,
    metrics,
    logger,
    retry: { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs },
    configFaultPauseMs: config.configFaultPauseMs,
    ambiguityPolicy: config.ambiguityPolicy,
    // Longer than a lock plus a stalled check: an attempt still alive after that has lost its job anyway.
    ambiguityGraceMs: config.lockDurationMs + config.stalledIntervalMs,
    closing: () => closingFlag,
    campaigns,
    queue,
    batchParallelism: config.concurrency,
    suppressions: new SuppressionStore(redis, config.prefix),
    ...(webhooks ? { webhooks: webhooks.emitter } : {}),
    ...(config.dkim ? { dkim: config.dkim } : {}),
    ...(config.verp ? { verp: config.verp } : {}),
    ...(config.unsubscribe
      ? {
          unsubscribe: {
            baseUrl: config.unsubscribe.baseUrl,
            secret: config.unsubscribe.secrets[0]!,
            ...(config.unsubscribe.mailto === undefined ? {} : { mailto: config.unsubscribe.mailto }),
          },
        }
      : {}),
  });
  if (!config.dkim) {
    logger.warn(
      'MAILROOM_DKIM_CONFIG_FILE is not set: messages go out unsigned (Gmail and Yahoo require DKIM for bulk mail)',
    );
  }
  if (!config.unsubscribe) {
    logger.warn(
      'MAILROOM_UNSUBSCRIBE_URL is not set: campaign messages go out without a one-click unsubscribe link (Gmail and Yahoo require one for bulk mail)',
    );
  }

  /** Processors running now, so shutdown can wait for them with its own deadline. */
  const active = new Set<Promise<MailJobResult>>();
  const worker = new Worker<MailJobData, MailJobResult>(
    MAIL_QUEUE,
    (job, token) => {
      watchdog?.touch();
      metrics.jobsActive.inc();
      const running = processor(job, token).finally(() => {
        metrics.jobsActive.dec();
        active.delete(running);
      });
      active.add(running);
      return running;
    },
    {
      connection: redis,
      prefix: config.prefix,
      concurrency: config.concurrency,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.stalledIntervalMs,
      // A stall means a crashed or frozen worker; the ledger keeps a re-run from sending twice, so a job may
      // stall a few times (crash loops end at the message's max age, and failed jobs are repaired).
      maxStalledCount: 5,
      autorun: false,
      settings: { backoffStrategy: mailBackoffStrategy },
    },
  );
  worker.on('error', (err) => logger.error({ err: { message: err.message } }, 'worker error'));
  worker.on('failed', (job, err) => {
    if (job && err.name !== 'TransientDeliveryError' && err.name !== 'DelayedError') {
      logger.error({ msgId: job.id, err: { message: err.message, name: err.name } }, 'job failed');
    }
  });

  // A relay whose circuit opens takes no mail; when every relay is out, the worker stops fetching jobs until
  // a probe finds one usable again (messages wait in the queue, none is bounced).
  for (const relay of router.relays) {
    relay.circuit.on('opened', (until, reason) => {
      logger.warn({ relay: relay.name, reason, probeAt: new Date(until).toISOString() }, 'relay paused');
      if (router.allOpen() && !closingFlag) {
        worker.pause(true).catch((err: unknown) => logger.error({ err }, 'could not pause the worker'));
      }
    });
    relay.circuit.on('probeFailed', (err) => {
      // A probe that meets the same configuration fault counts it again, as a message would have.
      if (err instanceof SmtpSendError) {
        const c = classifySmtpOutcome(err.observation);
        if (c.outcome === 'config') metrics.configFaults.inc({ reason: configFaultKind(c.replyClass) });
      }
    });
    relay.circuit.on('closed', () => {
      logger.info({ relay: relay.name }, 'relay usable again');
      if (worker.isPaused() && !closingFlag) {
        worker.resume().catch((err: unknown) => logger.error({ err }, 'could not resume the worker'));
      }
    });
  }

  let readyCache: { at: number; ok: boolean } | undefined;
  const ready = async (): Promise<boolean> => {
    if (redis.status !== 'ready') return false;
    if (readyCache && Date.now() - readyCache.at < READY_CACHE_MS) return readyCache.ok;
    let ok = true;
    try {
      await redis.ping();
      await Promise.any(router.relays.map((r) => r.sender.verify()));
    } catch {
      ok = false;
    }
    readyCache = { at: Date.now(), ok };
    return ok;
  };

  // How long past its deadline a message may take to end: the reconciler's pass plus an attempt in flight.
  const overdueGraceMs =
    2 * config.reconcileIntervalMs + config.lockDurationMs + config.relay.socketTimeoutMs;
  const queueGauges: QueueGauges | undefined = config.queueGauges
    ? startQueueGauges({
        registry,
        redis,
        queues: [queue, ...(webhooks ? [webhooks.queue] : [])],
        ledger,
        overdueGraceMs,
        logger,
      })
    : undefined;

  let http: HealthServer | undefined;
  if (config.http) {
    http = await startHealthServer({
      host: config.http.host,
      port: config.http.port,
      registry,
      ready,
      ...(config.http.metricsToken === undefined ? {} : { metricsToken: config.http.metricsToken }),
    });
  }

  const reconciler =
    config.reconcileIntervalMs > 0
      ? new Reconciler({
          redis,
          ledger,
          queue,
          prefix: config.prefix,
          metrics,
          logger,
          intervalMs: config.reconcileIntervalMs,
          enqueueGraceMs: 60_000,
          overdueGraceMs,
        })
      : undefined;
  const feeder =
    config.campaignHighWater > 0
      ? new CampaignFeeder({
          redis,
          queue,
          chunks: campaigns.chunks,
          prefix: config.prefix,
          logger,
          highWater: config.campaignHighWater,
        })
      : undefined;
  const onStuck =
    deps.onStuck ??
    ((idleMs: number, waiting: number) => {
      logger.fatal({ idleMs, waiting }, 'worker idle while jobs wait: exiting so the supervisor restarts it');
      process.exit(70);
    });
  const watchdog =
    config.watchdogMs > 0
      ? new Watchdog({
          queue,
          stuckAfterMs: config.watchdogMs,
          expectedToWork: () => !closingFlag && !router.allOpen() && !worker.isPaused(),
          onStuck: (idleMs, waiting) => {
            metrics.watchdogTrips.inc();
            onStuck(idleMs, waiting);
          },
        })
      : undefined;

  router.start(1000, (err) =>
    logger.warn({ err: { message: (err as Error).message } }, 'could not read the rate-limit state'),
  );
  void worker.run().catch((err: unknown) => logger.fatal({ err }, 'worker stopped unexpectedly'));
  await worker.waitUntilReady();
  reconciler?.start();
  feeder?.start();
  watchdog?.start();
  logger.info(
    {
      relays: router.relays.map((r) => r.name),
      concurrency: config.concurrency,
      http: http?.url,
      prefix: config.prefix,
      redis: describeRedisTarget(config.redis),
    },
    'worker started',
  );

  let closing: Promise<{ drained: boolean }> | undefined;
  const close = (timeoutMs = config.shutdownTimeoutMs) => {
    closing ??= (async () => {
      logger.info({ timeoutMs }, 'worker stopping: no new jobs, finishing messages in flight');
      closingFlag = true;
      router.stop();
      watchdog?.stop();
      await reconciler?.stop();
      await feeder?.stop();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      // Stop fetching at once, then wait for the messages in flight, bounded by the deadline
      // (BullMQ's own close() waits without a limit).
      await worker.pause(true);
      const outcome = await Promise.race([
        Promise.allSettled([...active]).then(() => 'drained' as const),
        deadline,
      ]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        logger.warn(
          { active: active.size },
          'shutdown deadline reached: jobs still running are left for stalled-job recovery',
        );
      }
      await worker.close(outcome === 'timeout');
      // After the last send (its events are in the buffer), before Redis: writes what is buffered.
      await webhooks?.close();
      await queueGauges?.stop();
      await queue.close();
      for (const relay of router.relays) relay.sender.close();
      await http?.close();
      redis.disconnect();
      metrics.redisConnected.set(0);
      logger.info({ drained: outcome === 'drained' }, 'worker stopped');
      return { drained: outcome === 'drained' };
    })();
    return closing;
  };

  return { worker, metrics, registry, ledger, reconciler, httpUrl: http?.url, close };
}
