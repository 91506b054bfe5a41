import { ConfigError } from '@mailroom/core';
import { startApiServer } from './api-server.js';
import { loadApiConfig } from './config.js';

/**
 * Runs the API from the environment until SIGTERM or SIGINT. Invalid configuration prints one line per
 * problem, `MAILROOM_X: reason`, and exits 1.
 */
export async function runApiFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config;
  try {
    config = loadApiConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${issue.field}: ${issue.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
  const server = await startApiServer(config);
  server.app.log.info({ url: server.url }, 'mailroom api listening');
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      server.app.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    server.app.log.info({ signal }, 'signal received');
    server.close().then(
      () => {
        process.exitCode = 0;
      },
      (err: unknown) => {
        server.app.log.error({ err }, 'error while stopping');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
