import type { RelayConfig } from '../relay-config.js';
import { NodemailerSender } from './nodemailer-sender.js';
import { PipeliningSender, type PipeliningSenderOptions } from './pipelining-sender.js';
import type { Sender, SenderKind } from './sender.js';

/**
 * The sender for a relay: `pipelining` (Mailroom's own pipelining pool) or `nodemailer` (the nodemailer
 * pool, which also covers what the pipelining sender does not do, such as XOAUTH2).
 */
export function createSender(
  config: RelayConfig,
  kind: SenderKind,
  options: PipeliningSenderOptions = {},
): Sender {
  switch (kind) {
    case 'pipelining':
      return new PipeliningSender(config, options);
    case 'nodemailer':
      return new NodemailerSender(config);
  }
}
