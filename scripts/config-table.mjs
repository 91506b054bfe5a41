#!/usr/bin/env node
// Prints README's configuration table, generated from the worker's settings schema (run `npm run build` first).
import { settingsTable, workerSettings } from '@mailroom/worker';

process.stdout.write(`${settingsTable(workerSettings)}\n`);
