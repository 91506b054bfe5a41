/** The logger the webhook parts take (pino's `Logger` fits): facts as fields, a short message. */
export interface WebhookLogger {
  debug(facts: object, message: string): void;
  info(facts: object, message: string): void;
  warn(facts: object, message: string): void;
  error(facts: object, message: string): void;
}

/** Logs nothing: the default when no logger is given. */
export const silentWebhookLogger: WebhookLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * Lets one line per key through every `intervalMs` and counts the ones held back, so that an endpoint that
 * is down, or a Redis outage, logs a line a minute rather than one per delivery or event.
 */
export class LogThrottle {
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; held: number }>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Undefined while held back; otherwise how many lines were held back since the last one. */
  pass(key: string, now = Date.now()): { held: number } | undefined {
    const entry = this.#last.get(key);
    if (entry !== undefined && now - entry.at < this.#intervalMs) {
      entry.held += 1;
      return undefined;
    }
    this.#last.set(key, { at: now, held: 0 });
    return { held: entry?.held ?? 0 };
  }

  /** Forgets a key (the condition ended): its next line passes at once. */
  reset(key: string): void {
    this.#last.delete(key);
  }
}
