export { loadWorkerConfig, workerSettings, type WorkerConfig } from './config.js';
export { settingsTable, loadSettings, setting, booleanString, type SettingsSpec } from './settings.js';
export { createLogger, REDACT_PATHS, type Logger } from './logger.js';
export { startWorkerService, type WorkerService, type WorkerServiceDeps } from './worker-service.js';
export {
  createMailProcessor,
  mailBackoffStrategy,
  TransientDeliveryError,
  type DeliveryResult,
  type BatchResult,
  type MailJobResult,
} from './mail-processor.js';
export { retryDelayMs, nextAttemptDelayMs } from './retry-policy.js';
export { runWorkerFromEnv } from './main.js';
export { VERSION } from './version.js';
export { Reconciler, type ReconcileReport } from './reconciler.js';
export { CampaignFeeder, type CampaignFeederOptions, type FeedReport } from './campaign-feeder.js';
export { startQueueGauges, type QueueGauges, type QueueGaugesOptions } from './queue-gauges.js';
export { Watchdog } from './watchdog.js';
export { checkRedisDurability, assertRedisDurable } from './redis-guard.js';
export {
  loadRoutingConfig,
  parseRoutingConfig,
  singleRelayRouting,
  DEFAULT_DOMAIN_GROUPS,
  type RoutingConfig,
  type RelayDefinition,
  type DomainGroup,
  type ScopeLimits,
} from './relays-config.js';
export { RelayRouter, type RelayHandle, type DomainScope } from './relay-router.js';
export { RelayCircuit, type CircuitState, type CircuitOptions } from './relay-circuit.js';
export { coalescedSuppressionCheck } from './suppression-check.js';
