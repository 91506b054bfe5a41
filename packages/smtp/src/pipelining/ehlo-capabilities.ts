/** What a relay offers, read from its EHLO reply (RFC 5321 section 4.1.1.1). */
export interface EhloCapabilities {
  /** RFC 2920: commands may be sent in groups without waiting for each reply. */
  readonly pipelining: boolean;
  /** RFC 3207. */
  readonly startTls: boolean;
  /** RFC 4954: the AUTH keyword was advertised. */
  readonly auth: boolean;
  /** SASL mechanisms advertised, upper-case. */
  readonly authMechanisms: readonly string[];
  /** RFC 1870: SIZE was advertised (then MAIL FROM carries SIZE=). */
  readonly size: boolean;
  /** Largest message the relay takes, in octets; 0 when it names no limit. */
  readonly maxSizeBytes: number;
  /** RFC 6531. */
  readonly smtpUtf8: boolean;
}

/** A HELO session: no extension at all. */
export const NO_CAPABILITIES: EhloCapabilities = {
  pipelining: false,
  startTls: false,
  auth: false,
  authMechanisms: [],
  size: false,
  maxSizeBytes: 0,
  smtpUtf8: false,
};

/**
 * Reads the extensions from an EHLO reply such as `250-relay.example\n250-PIPELINING\n250-SIZE 10240000`.
 * The first line is the greeting, every later line one extension keyword with its parameters.
 */
export function parseEhloCapabilities(reply: string): EhloCapabilities {
  const keywords = new Map<string, string[]>();
  const lines = reply.split('\n').slice(1);
  for (const line of lines) {
    const text = line.replace(/^\d{3}[ -]?/, '').trim();
    if (text === '') continue;
    // `AUTH=PLAIN LOGIN` is an old form some relays still send next to or instead of `AUTH PLAIN LOGIN`.
    const [keyword = '', ...params] = text.split(/[\s=]+/);
    const name = keyword.toUpperCase();
    keywords.set(name, [...(keywords.get(name) ?? []), ...params]);
  }
  const auth = keywords.get('AUTH');
  const size = keywords.get('SIZE');
  const limit = Number(size?.[0] ?? 0);
  return {
    pipelining: keywords.has('PIPELINING'),
    startTls: keywords.has('STARTTLS'),
    auth: auth !== undefined,
    authMechanisms: [...new Set((auth ?? []).map((m) => m.toUpperCase()))],
    size: size !== undefined,
    maxSizeBytes: Number.isSafeInteger(limit) && limit > 0 ? limit : 0,
    smtpUtf8: keywords.has('SMTPUTF8'),
  };
}
