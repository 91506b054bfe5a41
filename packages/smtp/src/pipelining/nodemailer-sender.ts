import type { RelayConfig } from '../relay-config.js';
import { RelayTransport, type RelayAcceptance } from '../relay-transport.js';
import type { Sender, SenderHooks, SmtpEnvelope } from './sender.js';

/**
 * The nodemailer-based pool (`RelayTransport`, a pool of nodemailer SMTPConnections) as a `Sender`, for
 * relays or features the pipelining sender does not cover (XOAUTH2, for instance). RelayTransport awaits its
 * `beforeFinalDot` hook once the body is handed to the connection and writes the final dot right after it,
 * so `onBodyWritten` is called at that moment (just before the dot, not after it).
 */
export class NodemailerSender implements Sender {
  readonly transport: RelayTransport;

  constructor(readonly config: RelayConfig) {
    this.transport = new RelayTransport(config);
  }

  send(envelope: SmtpEnvelope, raw: Buffer, hooks: SenderHooks = {}): Promise<RelayAcceptance> {
    const { beforeFinalDot, onBodyWritten } = hooks;
    if (onBodyWritten === undefined) {
      return this.transport.send(envelope, raw, beforeFinalDot === undefined ? {} : { beforeFinalDot });
    }
    return this.transport.send(envelope, raw, {
      beforeFinalDot: async () => {
        await beforeFinalDot?.();
        onBodyWritten();
      },
    });
  }

  get sending(): number {
    return this.transport.sending;
  }

  verify(): Promise<void> {
    return this.transport.verify();
  }

  close(): void {
    this.transport.close();
  }
}
