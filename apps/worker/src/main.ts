import { ConfigError } from '@mailroom/core';
import { loadWorkerConfig } from './config.js';
import { createLogger } from './logger.js';
import { startWorkerService } from './worker-service.js';

/**
 * Runs a worker from the environment until SIGTERM or SIGINT. Invalid configuration prints one line per
 * problem, `MAILROOM_X: reason`, and exits 1.
 */
export async function runWorkerFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadWorkerConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${issue.field}: ${issue.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const service = await startWorkerService(config, { logger });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, 'signal received');
    service.close().then(
      ({ drained }) => {
        process.exitCode = drained ? 0 : 1;
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
