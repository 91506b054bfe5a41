/** Stable codes of the errors the sink raises. */
export type SinkErrorCode = 'SINK_INVALID_OPTIONS' | 'SINK_WAIT_TIMEOUT' | 'SINK_CLOSED' | 'SINK_NO_RAW';

/** Base class of every error the sink raises; `code` is stable, the message is for people. */
export class SinkError extends Error {
  override readonly name: string = 'SinkError';
  constructor(
    readonly code: SinkErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The options passed to `startSink` cannot work (e.g. `secure` without `tls`). */
export class SinkOptionsError extends SinkError {
  override readonly name = 'SinkOptionsError';
  constructor(message: string) {
    super('SINK_INVALID_OPTIONS', message);
  }
}

/** `waitForMessages` gave up before the sink had stored enough messages. */
export class SinkWaitTimeoutError extends SinkError {
  override readonly name = 'SinkWaitTimeoutError';
  constructor(
    readonly expected: number,
    readonly received: number,
    readonly timeoutMs: number,
  ) {
    super(
      'SINK_WAIT_TIMEOUT',
      `sink: waited ${timeoutMs} ms for ${expected} message(s), only ${received} stored`,
    );
  }
}

/** The sink was closed while something was still waiting on it. */
export class SinkClosedError extends SinkError {
  override readonly name = 'SinkClosedError';
  constructor(message = 'sink: closed while waiting') {
    super('SINK_CLOSED', message);
  }
}

/** A record was asked for its raw bytes, but the sink was not started with `keepRaw`. */
export class SinkNoRawError extends SinkError {
  override readonly name = 'SinkNoRawError';
  constructor(seq: number) {
    super('SINK_NO_RAW', `sink: message ${seq} has no raw bytes (start the sink with keepRaw: true)`);
  }
}
