export { main } from './main.js';
export { sendCommand, messageFromFlags, UsageError, type SendFlags } from './send-command.js';
export { demoCommand, type DemoFlags } from './demo-command.js';
export { startLocalRedis, ensureRedisServer, freePort, findInPath, type LocalRedis } from './local-redis.js';
export { sumMetric } from './prom-text.js';
export { demoMessage, demoReader, demoRecipients, DEMO_HTML, DEMO_TEMPLATE } from './demo-newsletter.js';
export {
  suppressionCommand,
  registerSuppressionCommand,
  SUPPRESSION_ACTIONS,
  type SuppressionAction,
  type SuppressionFlags,
  type SuppressionFileFormat,
} from './suppression-command.js';
export {
  apiKeyCommand,
  registerApiKeyCommand,
  API_KEY_ACTIONS,
  type ApiKeyAction,
  type ApiKeyFlags,
} from './api-key-command.js';
export { registerApiCommand } from './api-command.js';
export { statusCommand, type StatusFlags } from './status-command.js';
export * from './inbound-command.js';
