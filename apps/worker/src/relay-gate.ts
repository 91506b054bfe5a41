import { EventEmitter } from 'node:events';

/**
 * Holds sending to a relay after a configuration fault (bad credentials, TLS failure, relay denied): a fault
 * that every message would hit again must pause sending, not bounce messages. After the pause the next
 * message probes the relay; if the fault is still there, the gate closes again.
 */
export class RelayGate extends EventEmitter<{ closed: [until: number, reason: string]; opened: [] }> {
  private closedUntil = 0;
  private timer: NodeJS.Timeout | undefined;

  /** Whether sending is held now. */
  isClosed(now = Date.now()): boolean {
    return now < this.closedUntil;
  }

  /** When sending may resume (ms since the epoch); 0 when open. */
  get until(): number {
    return this.closedUntil;
  }

  close(pauseMs: number, reason: string): void {
    const until = Date.now() + pauseMs;
    if (until <= this.closedUntil) return;
    this.closedUntil = until;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.emit('opened');
    }, pauseMs);
    this.emit('closed', until, reason);
  }

  /** Stops the reopening timer (shutdown). */
  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
