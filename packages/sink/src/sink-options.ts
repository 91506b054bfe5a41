/** How to start a sink. Every field is optional; the defaults give a plain SMTP sink on an ephemeral loopback port. */
export interface SinkOptions {
  /** Address to listen on. Default `'127.0.0.1'`. */
  host?: string;
  /** Port to listen on. Default `0`: an ephemeral port, read it back from `Sink.port`. */
  port?: number;
  /**
   * Server key and certificate (PEM). With them the sink offers STARTTLS, or speaks TLS from the
   * first byte when `secure` is set. Without them STARTTLS is not offered at all. Default: none.
   */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Implicit TLS (port-465 style); needs `tls`. Default `false`. */
  secure?: boolean;
  /**
   * Neither advertise nor accept STARTTLS even though `tls` is set, as behind a middlebox that strips
   * it (the command gets `500`). Default `false`.
   */
  hideStartTls?: boolean;
  /**
   * Require AUTH PLAIN or LOGIN with these credentials before MAIL; a wrong pair gets `535 5.7.8`.
   * Without `tls` AUTH is allowed in the clear (loopback tests). Default: no AUTH offered.
   */
  auth?: { user: string; pass: string };
  /** Hold the 220 greeting back this many milliseconds (on top of the server's own ~100 ms). Default `0`. */
  greetingDelayMs?: number;
  /** Advertised SIZE in bytes; a larger message gets `552 5.3.4` after DATA. Default: no limit. */
  maxMessageBytes?: number;
  /** Keep the raw message bytes in each record (for tests; costs memory). Default `false`. */
  keepRaw?: boolean;
  /** Text appended to the 220 greeting. Default: none. */
  banner?: string;
  /**
   * Asked at every RCPT before the scripts: a reply to refuse the recipient with (a 421 also closes the
   * connection), or undefined to go on. For refusals that depend on time or domain, e.g. a mailbox provider
   * throttling for a while. Default: none.
   */
  rcptPolicy?: (address: string) => { code: number; message: string } | undefined;
}
