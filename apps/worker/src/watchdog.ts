import type { MailQueue } from '@mailroom/queue';

export interface WatchdogOptions {
  queue: MailQueue;
  /** Idle time with work waiting that counts as stuck, ms. */
  stuckAfterMs: number;
  /** Whether the worker is expected to take jobs now (not paused by a relay fault, not closing). */
  expectedToWork: () => boolean;
  onStuck: (idleMs: number, waiting: number) => void;
}

/**
 * Notices a worker that stopped consuming while work waits, a known BullMQ failure after Redis outages (a
 * blocking connection left reconnecting forever while health checks stay green).
 */
export class Watchdog {
  private lastActivity = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: WatchdogOptions) {}

  /** Call whenever the worker starts a job. */
  touch(): void {
    this.lastActivity = Date.now();
  }

  start(): void {
    const every = Math.max(1000, Math.floor(this.o.stuckAfterMs / 4));
    this.timer = setInterval(() => {
      void this.check();
    }, every);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async check(now = Date.now()): Promise<boolean> {
    const idle = now - this.lastActivity;
    if (idle < this.o.stuckAfterMs || !this.o.expectedToWork()) return false;
    let waiting = 0;
    try {
      const counts = await this.o.queue.getJobCounts('wait', 'prioritized');
      waiting = (counts.wait ?? 0) + (counts.prioritized ?? 0);
    } catch {
      return false; // Redis unreachable: that is the connection alarm's business, not a stuck consumer
    }
    if (waiting === 0) {
      this.lastActivity = now;
      return false;
    }
    this.o.onStuck(idle, waiting);
    this.lastActivity = now;
    return true;
  }
}
