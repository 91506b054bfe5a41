#!/usr/bin/env node
// Writes DKIM configurations for the benchmark newsletter's From domain, one per key type, so the
// end-to-end benchmark can measure signing on the send path as Mailroom variants:
//
//   node bench/dkim-keys.mjs            writes bench/results/dkim/{ed25519,rsa-2048}.json and their keys,
//                                       then prints the `npm run bench` options that use them
//
// The keys are fresh each time and only ever sign mail to the benchmark's sink.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NEWSLETTER_FROM } from './lib/newsletter.mjs';

const dir = fileURLToPath(new URL('./results/dkim/', import.meta.url));
const domain = NEWSLETTER_FROM.address.slice(NEWSLETTER_FROM.address.indexOf('@') + 1);
mkdirSync(dir, { recursive: true });

const keys = {
  ed25519: generateKeyPairSync('ed25519').privateKey,
  'rsa-2048': generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
};

const variants = [];
for (const [name, key] of Object.entries(keys)) {
  const keyFile = join(dir, `${name}.pem`);
  writeFileSync(keyFile, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const configFile = join(dir, `${name}.json`);
  const entry = { domain, selector: `bench-${name}`, privateKeyFile: keyFile };
  writeFileSync(configFile, `${JSON.stringify([entry], null, 2)}\n`);
  variants.push(`--mailroom-variant dkim-${name}:MAILROOM_DKIM_CONFIG_FILE=${configFile}`);
}

process.stdout.write(
  `${[
    `DKIM configurations for ${domain} written to ${dir}`,
    'Measure them beside unsigned Mailroom with:',
    `  npm run bench -- ${variants.join(' ')}`,
  ].join('\n')}\n`,
);
