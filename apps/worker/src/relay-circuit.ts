import { EventEmitter } from 'node:events';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitOptions {
  /** Consecutive connection, TLS or AUTH failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before a probe; doubles after each failed probe (at most 16x). */
  readonly openMs: number;
  /**
   * The probe run when the open period ends: a connection (greeting, EHLO, STARTTLS, AUTH) without a
   * message. Resolves when the relay is usable again.
   */
  readonly probe: () => Promise<void>;
}

/**
 * The health of one relay in one worker process. Closed: messages go to it. A run of connection, TLS or
 * AUTH failures (or one configuration fault: bad credentials, TLS refused) opens it: messages go to other
 * relays, or wait, and are never bounced for it. When the open period ends the circuit is half-open: a probe
 * connection without a message decides whether it closes again or stays open for twice as long.
 */
export class RelayCircuit extends EventEmitter<{
  opened: [until: number, reason: string];
  closed: [];
  probeFailed: [err: unknown];
}> {
  #state: CircuitState = 'closed';
  #failures = 0;
  #openUntil = 0;
  #opens = 0;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;
  /** The pause of a configuration fault, kept for the re-opening after a failed probe. */
  #configPauseMs: number | undefined;

  constructor(
    readonly relay: string,
    private readonly options: CircuitOptions,
  ) {
    super();
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** When an open circuit probes again (ms since the epoch); 0 when closed. */
  get openUntil(): number {
    return this.#state === 'closed' ? 0 : this.#openUntil;
  }

  /** Whether messages may go to this relay now. */
  isAvailable(): boolean {
    return this.#state === 'closed';
  }

  /** A transaction got through the connection phase: the run of failures is over. */
  success(): void {
    this.#failures = 0;
    if (this.#state !== 'closed') this.#close();
  }

  /**
   * A failure before the body: `connect` (refused, unreachable, timed out, lost) counts towards the
   * threshold; `config` (AUTH refused, TLS failed, relay denied) opens the circuit at once, for `pauseMs`.
   */
  failure(kind: 'connect' | 'config', reason: string, pauseMs?: number): void {
    if (this.#disposed || this.#state === 'open') return;
    this.#failures += 1;
    if (kind === 'config' || this.#failures >= this.options.failureThreshold || this.#state === 'half-open') {
      this.#configPauseMs = kind === 'config' ? pauseMs : undefined;
      this.#open(pauseMs ?? this.#backoff(), reason);
    }
  }

  /** A configuration fault pauses for its fixed time; connection failures back off, doubling to 16x. */
  #backoff(): number {
    return this.#configPauseMs ?? this.options.openMs * 2 ** Math.min(this.#opens, 4);
  }

  #open(ms: number, reason: string): void {
    this.#state = 'open';
    this.#opens += 1;
    this.#openUntil = Date.now() + ms;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#probe(), ms);
    this.emit('opened', this.#openUntil, reason);
  }

  #probe(): void {
    if (this.#disposed) return;
    this.#state = 'half-open';
    this.options.probe().then(
      () => {
        if (!this.#disposed && this.#state === 'half-open') this.#close();
      },
      (err: unknown) => {
        if (!this.#disposed && this.#state === 'half-open') {
          this.emit('probeFailed', err);
          this.#open(this.#backoff(), 'probe failed');
        }
      },
    );
  }

  #close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#state = 'closed';
    this.#failures = 0;
    this.#opens = 0;
    this.#configPauseMs = undefined;
    this.emit('closed');
  }

  /** Stops the probe timer (shutdown). */
  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
