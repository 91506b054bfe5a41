/** What the sink recorded about one message it stored. */
export interface ReceivedMessage {
  /** 1, 2, 3... in the order messages were stored, over the sink's whole life (`reset` does not restart it). */
  readonly seq: number;
  /** `Date.now()` (ms) when the reply to the final dot was sent, or when the message was stored if it never was. */
  readonly receivedAt: number;
  /** smtp-server's id of the SMTP session (one per connection). */
  readonly sessionId: string;
  /** Whether the session was under TLS (implicit or after STARTTLS) when the message came in. */
  readonly secure: boolean;
  /** Negotiated TLS version, e.g. `'TLSv1.3'`, for a secure session. */
  readonly tlsProtocol?: string;
  /** The user name the session authenticated as. */
  readonly authUser?: string;
  /** MAIL FROM address; `''` for the null sender. */
  readonly mailFrom: string;
  /** The accepted RCPT TO addresses, in order. */
  readonly rcptTo: readonly string[];
  /** Message-ID header value, trimmed. */
  readonly messageId?: string;
  /** Subject header value, raw (encoded words are not decoded). */
  readonly subject?: string;
  /** The header block in order, unfolded, raw values. */
  readonly headers: readonly (readonly [name: string, value: string])[];
  /** Size of the full raw message as received (after dot-unstuffing). */
  readonly sizeBytes: number;
  /** Hex SHA-256 of the full raw message as received (after dot-unstuffing). */
  readonly sha256: string;
  /** The raw message, when the sink was started with `keepRaw`. */
  readonly raw?: Buffer;
  /** `false` for a message that was stored but never answered (`acceptdrop`, or a `slow` reply whose client left). */
  readonly replied: boolean;
}
