/**
 * How the connection to a relay is secured.
 * - `starttls`: plain connect, then STARTTLS is REQUIRED (the message is never sent in the clear).
 * - `tls`: implicit TLS from the first byte (port 465 style).
 * - `none`: no TLS at all. Only for a sink on loopback; it must be chosen explicitly.
 */
export type TlsMode = 'starttls' | 'tls' | 'none';

/** One relay (smart host) as the worker uses it. Plain data: validated at the edge by the app's config. */
export interface RelayConfig {
  /** Name used in logs and metric labels, never a host name. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tlsMode: TlsMode;
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Extra trusted CA certificates (PEM) for a relay with a private CA. */
  readonly ca?: string;
  /** Name checked against the relay's certificate (default: host). */
  readonly tlsServername?: string;
  /** Verify the relay's certificate. True unless an operator explicitly turns it off. */
  readonly verifyCertificates: boolean;
  /** Pooled connections per worker process. */
  readonly maxConnections: number;
  /** Messages per connection before it is replaced. */
  readonly maxMessagesPerConnection: number;
  readonly connectionTimeoutMs: number;
  readonly greetingTimeoutMs: number;
  /** Inactivity limit on an open connection, which also bounds the wait for the reply to the final dot. */
  readonly socketTimeoutMs: number;
  /** Host name announced in EHLO (default: the OS host name). */
  readonly clientName?: string;
}
