// Errors of the benchmark runner. Each carries a stable `code` so callers and the JSON report can tell
// a timeout from a crashed process or a missing tool without parsing messages.

/** Base class: every benchmark failure has a stable string code. */
export class BenchError extends Error {
  /**
   * @param {string} code stable identifier such as `ERR_BENCH_TIMEOUT`
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'BenchError';
    /** @readonly */
    this.code = code;
  }
}

/** A wait (sink count, readiness, queue drain) ran past its time limit. */
export class BenchTimeoutError extends BenchError {
  /**
   * @param {string} what what was awaited, in words
   * @param {number} timeoutMs
   * @param {ErrorOptions} [options]
   */
  constructor(what, timeoutMs, options) {
    super('ERR_BENCH_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`, options);
    this.name = 'BenchTimeoutError';
  }
}

/** A process the benchmark depends on exited (or failed to start) while it was still needed. */
export class BenchProcessError extends BenchError {
  /** @param {string} message */
  constructor(message) {
    super('ERR_BENCH_PROCESS', message);
    this.name = 'BenchProcessError';
  }
}

/** A system or tool cannot run on this machine (binary missing, not root). */
export class BenchUnavailableError extends BenchError {
  /** @param {string} message */
  constructor(message) {
    super('ERR_BENCH_UNAVAILABLE', message);
    this.name = 'BenchUnavailableError';
  }
}

/** The command line was not understood. */
export class BenchArgsError extends BenchError {
  /** @param {string} message */
  constructor(message) {
    super('ERR_BENCH_ARGS', message);
    this.name = 'BenchArgsError';
  }
}
