import type { Command } from 'commander';
import { runApiFromEnv } from '@mailroom/api';

/** Registers `mailroom api`: the HTTP API, configured from MAILROOM_* variables (see docs/api.md). */
export function registerApiCommand(program: Command): void {
  program
    .command('api')
    .description('run the HTTP API configured from MAILROOM_* environment variables (see docs/api.md)')
    .action(async () => {
      await runApiFromEnv(process.env);
    });
}
