/**
 * One ordered table from what an SMTP attempt showed (as nodemailer reports it) to what Mailroom does
 * about it. The first matching row wins. Rules of the table:
 *
 * - A reply is classified by its RFC 3463 enhanced status class when that disagrees with the basic reply
 *   code (`550 4.2.2` is transient, `450 5.1.1` permanent); a 2xx reply is never overridden.
 * - `ambiguous` only arises when the whole body and the final dot were handed to the socket and no reply
 *   came back: the relay may or may not have queued the message (RFC 1047).
 * - `config` means the fault is in our setup or the relay's (credentials, TLS, relaying rights, relay
 *   host name). The message is never bounced for it: the queue pauses and someone gets paged.
 * - `throttled` retries without using up an attempt; `transient` retries with backoff until max age.
 * - Nothing unrecognised ends as `permanent`: an unknown code follows its first digit, and an error
 *   without any reply or known code is `transient`.
 */

export type OutcomeClass = 'delivered' | 'transient' | 'throttled' | 'permanent' | 'config' | 'ambiguous';

/**
 * What kind of answer the attempt got: an SMTP reply class (after the enhanced-status override), or the
 * failure category when there was no reply. `ambiguous`: nothing conclusive (no reply after the body, an
 * unexpected reply code, or a local error without a reply).
 */
export type ReplyClass = '2xx' | '4xx' | '5xx' | 'net' | 'tls' | 'auth' | 'dns' | 'timeout' | 'ambiguous';

/** The facts of one SMTP attempt, taken from nodemailer's error or info object. */
export interface SmtpObservation {
  /** Reply code: nodemailer `err.responseCode`, or the code of `info.response` on success. */
  responseCode?: number;
  /** Full reply text, e.g. `550 5.1.1 <x@y>: user unknown`. */
  response?: string;
  /** nodemailer `err.code` (ECONNECTION, ETIMEDOUT, ESOCKET, EDNS, ETLS, EAUTH, ...) or a Node errno/TLS code. */
  code?: string;
  /** nodemailer `err.command`: `CONN`, `EHLO`, `STARTTLS`, `AUTH PLAIN`, `MAIL FROM`, `RCPT TO`, `DATA`, `API`... */
  command?: string;
  /** Error message; nodemailer often keeps the underlying TLS or socket cause only here. */
  message?: string;
  /** The whole body and the final dot were handed to the socket during this attempt. */
  bodyWritten?: boolean;
  /**
   * The failure happened while opening a connection (TCP, greeting, EHLO, STARTTLS, AUTH), before any
   * transaction: the relay's fault, whatever the message.
   */
  connecting?: boolean;
}

export interface Classification {
  readonly outcome: OutcomeClass;
  /** Stable snake_case reason, e.g. `mailbox_unknown`, `relay_denied`, `connection_lost_after_data`. */
  readonly reason: string;
  readonly replyClass: ReplyClass;
  /** RFC 3463 enhanced status `x.y.z` from the reply, when it had one. */
  readonly enhancedStatus?: string;
}

/** What a rule looks at: the observation, normalised once. */
interface Facts {
  /** `code`, upper-case; '' when absent. */
  readonly code: string;
  /** `command`, upper-case; '' when absent. */
  readonly command: string;
  /** Basic reply code from responseCode, else from the start of the response text. */
  readonly reply: number | undefined;
  readonly enhanced: string | undefined;
  /** Class digit used for decisions: the enhanced status class when it disagrees with the basic code. */
  readonly effective: number | undefined;
  /** Response and message, lower-case, for the few rules that must read text. */
  readonly text: string;
  readonly bodyWritten: boolean;
}

interface Rule {
  readonly when: (f: Facts) => boolean;
  readonly outcome: OutcomeClass;
  readonly reason: string;
  /** `reply`: the effective reply class (2xx/4xx/5xx). */
  readonly replyClass: ReplyClass | 'reply';
}

const TLS_ERROR_CODES = new Set([
  'ETLS',
  'EREQUIRETLS',
  'EPROTO',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'HOSTNAME_MISMATCH',
]);
/** Node/OpenSSL wording of certificate and handshake failures, for errors that keep them only in the text. */
const TLS_TEXT =
  /self[- ]signed|unable to verify|unable to get (?:local )?issuer|altname|certificate has expired|certificate is not yet valid|certificate (?:revoked|untrusted)|wrong version number|ssl routines|ssl alert|tlsv1 alert|handshake failure|hostname\/ip does not match/;
const STARTTLS_TEXT = /starttls/;
const THROTTLE_TEXT = /rate[- ]?limit|too many|try (?:again )?later|throttl|slow down|sending rate/;
/** Only explicit rate wording outranks a 5xx class; "too many" alone also means hop counts and such. */
const THROTTLE_TEXT_PERMANENT_CLASS =
  /rate[- ]?limit|throttl|sending rate|sending quota|daily (?:message |sending )?(?:quota|limit)/;
const RELAY_TEXT =
  /relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)|not permitted to relay|unable to relay|rcpthosts/;
const MAILBOX_FULL_TEXT = /mailbox (?:is )?full|over quota|mailbox quota|exceeded storage allocation/;
const MAILBOX_UNKNOWN_TEXT =
  /user unknown|unknown user|no such (?:user|mailbox|recipient)|mailbox (?:unavailable|not found)|does not exist/;
const SIZE_TEXT = /size|too large|too big/;

const TIMEOUT_TEXT = /\betimedout\b/;
const REFUSED_TEXT = /\beconnrefused\b/;
const UNREACHABLE_TEXT = /\be(?:host|net)(?:unreach|down)\b/;
const RESET_TEXT = /\beconnreset\b|\bepipe\b|\beconnaborted\b/;

const codeIn =
  (...codes: string[]) =>
  (f: Facts): boolean =>
    codes.includes(f.code);
const at =
  (...commands: string[]) =>
  (f: Facts): boolean =>
    commands.some((c) => f.command === c || f.command.startsWith(`${c} `));
const atAuth = (f: Facts): boolean => f.command.startsWith('AUTH');
const noReply = (f: Facts): boolean => f.reply === undefined;
const permanentClass = (f: Facts): boolean => f.effective === 5;
const transientClass = (f: Facts): boolean => f.effective === 4;
const enhancedIs =
  (...statuses: string[]) =>
  (f: Facts): boolean =>
    statuses.includes(f.enhanced ?? '');
const enhancedUnder =
  (prefix: string) =>
  (f: Facts): boolean =>
    f.enhanced?.startsWith(prefix) ?? false;
/** Enhanced status with this subject.detail in any class, e.g. `x.2.2` matches 4.2.2 and 5.2.2. */
const enhancedDetail =
  (detail: string) =>
  (f: Facts): boolean =>
    f.enhanced?.slice(1) === detail;
const says =
  (pattern: RegExp) =>
  (f: Facts): boolean =>
    pattern.test(f.text);
const all =
  (...tests: ((f: Facts) => boolean)[]) =>
  (f: Facts): boolean =>
    tests.every((t) => t(f));
const any =
  (...tests: ((f: Facts) => boolean)[]) =>
  (f: Facts): boolean =>
    tests.some((t) => t(f));

const TABLE: readonly Rule[] = [
  // The relay took the message. A 2xx that came with an error code is not success; later rows decide.
  {
    when: (f) => f.reply !== undefined && f.reply >= 200 && f.reply < 300 && f.code === '',
    outcome: 'delivered',
    reason: 'delivered',
    replyClass: '2xx',
  },

  // Body and final dot are out, no reply: the relay may have queued it. The policy decides (resend with the
  // same Message-ID, or stop), never this table. nodemailer reports this window as ECONNECTION/'CONN'.
  {
    when: all(
      (f) => f.bodyWritten,
      noReply,
      any(codeIn('ETIMEDOUT'), says(TIMEOUT_TEXT), says(/timed? ?out/)),
    ),
    outcome: 'ambiguous',
    reason: 'timeout_after_data',
    replyClass: 'ambiguous',
  },
  {
    when: all((f) => f.bodyWritten, noReply),
    outcome: 'ambiguous',
    reason: 'connection_lost_after_data',
    replyClass: 'ambiguous',
  },

  // 421 closes the session wherever it comes (greeting, EHLO, mid-transaction): retry on a new connection.
  // Gmail-style 421 4.7.x and rate wording mean "slow down".
  {
    when: all((f) => f.reply === 421, any(enhancedUnder('4.7.'), says(THROTTLE_TEXT))),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
  },
  { when: (f) => f.reply === 421, outcome: 'transient', reason: 'service_unavailable', replyClass: '4xx' },

  // TLS failures are configuration (or an attack): never retried into plaintext, never bounced.
  // nodemailer reports STARTTLS refused or required-but-missing as ETLS at STARTTLS, and a failed
  // handshake on an implicit-TLS port as ESOCKET with the certificate problem only in the message.
  {
    when: any(
      codeIn(...TLS_ERROR_CODES),
      (f) => f.code.startsWith('CERT_') || f.code.startsWith('ERR_TLS_') || f.code.startsWith('ERR_SSL_'),
    ),
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  { when: all(noReply, says(TLS_TEXT)), outcome: 'config', reason: 'tls_failed', replyClass: 'tls' },
  {
    when: all(permanentClass, says(STARTTLS_TEXT)),
    outcome: 'config',
    reason: 'tls_required',
    replyClass: 'tls',
  },

  // Authentication. A 4xx at AUTH is the relay's auth backend having a moment (454 4.7.0), not bad
  // credentials; everything else at AUTH, and the auth reply codes anywhere, is our configuration.
  { when: all(atAuth, transientClass), outcome: 'transient', reason: 'auth_unavailable', replyClass: 'auth' },
  {
    when: any(
      codeIn('EAUTH', 'ENOAUTH', 'EOAUTH2'),
      (f) => [530, 534, 535, 538].includes(f.reply ?? 0),
      enhancedIs('5.7.8'),
      all(atAuth, permanentClass),
    ),
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
  },

  // Relaying refused (also the temporary 454 4.7.1 form) or the relay not accepting our sender: every
  // message would fail the same way, so this is configuration, not a bounce.
  {
    when: all(any(permanentClass, transientClass), says(RELAY_TEXT)),
    outcome: 'config',
    reason: 'relay_denied',
    replyClass: 'reply',
  },
  {
    when: all(at('MAIL FROM'), permanentClass, enhancedUnder('5.7.')),
    outcome: 'config',
    reason: 'sender_not_permitted',
    replyClass: 'reply',
  },
  // 554 (or any 5xx) before a transaction: the relay refuses us, whatever the message.
  {
    when: all(at('CONN', 'EHLO', 'HELO', 'LHLO'), permanentClass),
    outcome: 'config',
    reason: 'greeting_rejected',
    replyClass: '5xx',
  },

  // Throttling: 4.7.x, rate wording, and 454/432 as the reliability table says (SES answers 454).
  {
    when: all(
      transientClass,
      any(enhancedUnder('4.7.'), says(THROTTLE_TEXT), (f) => f.reply === 454 || f.reply === 432),
    ),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
  },
  {
    when: all(permanentClass, says(THROTTLE_TEXT_PERMANENT_CLASS)),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '5xx',
  },

  // Mailbox full is a policy choice: retried until the message's max age, whatever class it came with.
  // A bare 552 at RCPT is RFC 5321's "exceeded storage allocation".
  {
    when: any(
      enhancedDetail('.2.2'),
      all(at('RCPT TO'), (f) => f.reply === 552 && f.enhanced === undefined),
      all(any(transientClass, permanentClass), says(MAILBOX_FULL_TEXT)),
    ),
    outcome: 'transient',
    reason: 'mailbox_full',
    replyClass: 'reply',
  },

  // Too large for the relay: resending the same bytes cannot help. Also nodemailer's own check against
  // the relay's advertised SIZE (EMESSAGE at MAIL FROM, no reply).
  {
    when: all(
      permanentClass,
      any(
        enhancedIs('5.3.4', '5.2.3'),
        all(
          (f) => f.reply === 552,
          (f) => !at('RCPT TO')(f),
        ),
      ),
    ),
    outcome: 'permanent',
    reason: 'message_too_large',
    replyClass: '5xx',
  },
  {
    when: all(noReply, codeIn('EMESSAGE'), says(SIZE_TEXT)),
    outcome: 'permanent',
    reason: 'message_too_large',
    replyClass: '5xx',
  },

  // 503 is a session out of step (nodemailer treats it as non-permanent too): a new session can succeed.
  { when: (f) => f.reply === 503, outcome: 'transient', reason: 'bad_command_sequence', replyClass: 'reply' },

  // Permanent per recipient or per message.
  {
    when: all(permanentClass, at('MAIL FROM')),
    outcome: 'permanent',
    reason: 'sender_rejected',
    replyClass: '5xx',
  },
  {
    when: all(
      permanentClass,
      any(
        enhancedIs('5.1.1'),
        all(at('RCPT TO'), (f) => f.enhanced === undefined, says(MAILBOX_UNKNOWN_TEXT)),
      ),
    ),
    outcome: 'permanent',
    reason: 'mailbox_unknown',
    replyClass: '5xx',
  },
  {
    when: all(permanentClass, enhancedIs('5.1.2', '5.1.10')),
    outcome: 'permanent',
    reason: 'domain_unknown',
    replyClass: '5xx',
  },
  {
    when: all(permanentClass, enhancedUnder('5.1.')),
    outcome: 'permanent',
    reason: 'address_rejected',
    replyClass: '5xx',
  },
  {
    when: all(permanentClass, at('RCPT TO')),
    outcome: 'permanent',
    reason: 'recipient_rejected',
    replyClass: '5xx',
  },
  {
    when: all(permanentClass, at('DATA')),
    outcome: 'permanent',
    reason: 'message_rejected',
    replyClass: '5xx',
  },

  // Any other reply follows its (effective) first digit.
  { when: permanentClass, outcome: 'permanent', reason: 'rejected', replyClass: '5xx' },
  { when: transientClass, outcome: 'transient', reason: 'temporary_failure', replyClass: '4xx' },
  {
    when: (f) => f.reply !== undefined,
    outcome: 'transient',
    reason: 'unexpected_reply',
    replyClass: 'ambiguous',
  },

  // No reply at all. The relay's name not resolving is configuration; everything else on the network
  // before the body went out is transient (RFC 5321 treats it like 451).
  {
    when: any(codeIn('ENOTFOUND'), all(codeIn('EDNS'), says(/\benotfound\b/))),
    outcome: 'config',
    reason: 'relay_host_unresolved',
    replyClass: 'dns',
  },
  {
    when: any(codeIn('EAI_AGAIN'), says(/\beai_again\b/)),
    outcome: 'transient',
    reason: 'dns_temporary_failure',
    replyClass: 'net',
  },
  { when: codeIn('EDNS'), outcome: 'transient', reason: 'dns_failed', replyClass: 'dns' },
  {
    when: all(any(codeIn('ETIMEDOUT'), says(TIMEOUT_TEXT)), says(/greeting/)),
    outcome: 'transient',
    reason: 'greeting_timeout',
    replyClass: 'timeout',
  },
  {
    when: any(codeIn('ETIMEDOUT'), says(TIMEOUT_TEXT)),
    outcome: 'transient',
    reason: 'timeout',
    replyClass: 'timeout',
  },
  {
    when: any(codeIn('ECONNREFUSED'), says(REFUSED_TEXT)),
    outcome: 'transient',
    reason: 'connection_refused',
    replyClass: 'net',
  },
  {
    when: any(codeIn('EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN'), says(UNREACHABLE_TEXT)),
    outcome: 'transient',
    reason: 'host_unreachable',
    replyClass: 'net',
  },
  {
    when: any(
      codeIn('ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ECONNECTION', 'ESOCKET', 'EPROXY', 'EMAXLIMIT'),
      says(RESET_TEXT),
    ),
    outcome: 'transient',
    reason: 'connection_lost',
    replyClass: 'net',
  },
  { when: codeIn('EPROTOCOL'), outcome: 'transient', reason: 'protocol_error', replyClass: 'net' },

  // Local errors without a reply. An envelope nodemailer refuses, or content that asks for file or URL
  // access, fails the same way on every attempt.
  { when: codeIn('EENVELOPE'), outcome: 'permanent', reason: 'invalid_envelope', replyClass: 'ambiguous' },
  {
    when: codeIn('EFILEACCESS', 'EURLACCESS'),
    outcome: 'permanent',
    reason: 'content_access_denied',
    replyClass: 'ambiguous',
  },
  { when: codeIn('ECONFIG'), outcome: 'config', reason: 'transport_misconfigured', replyClass: 'ambiguous' },

  // Anything else: retry, and let max age end it. Never silently permanent.
  { when: () => true, outcome: 'transient', reason: 'unclassified', replyClass: 'ambiguous' },
];

const FALLBACK: Rule = {
  when: () => true,
  outcome: 'transient',
  reason: 'unclassified',
  replyClass: 'ambiguous',
};

const ENHANCED_STATUS = /^(?:\d{3}[ -])?\s*([245]\.\d{1,3}\.\d{1,3})(?![\d.])/;
const MAX_REPLY_LINES = 32;

/** The RFC 3463 enhanced status (`5.1.1`) of a reply, from its first line that carries one. */
export function parseEnhancedStatus(response: string | undefined): string | undefined {
  if (response === undefined) return undefined;
  const lines = response.split(/\r?\n/, MAX_REPLY_LINES);
  for (const line of lines) {
    const match = ENHANCED_STATUS.exec(line);
    if (match?.[1] !== undefined) return match[1];
  }
  return undefined;
}

function replyCode(observation: SmtpObservation): number | undefined {
  const code = observation.responseCode;
  if (typeof code === 'number' && Number.isInteger(code) && code >= 100 && code <= 999) return code;
  const match = /^(\d{3})(?:[ -]|$)/.exec(observation.response ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

function facts(observation: SmtpObservation): Facts {
  const reply = replyCode(observation);
  const enhanced = reply === undefined ? undefined : parseEnhancedStatus(observation.response);
  const basic = reply === undefined ? undefined : Math.floor(reply / 100);
  const enhancedClass = enhanced === undefined ? undefined : Number(enhanced.charAt(0));
  // RFC 3463 section 2: the enhanced class is the more specific; it wins between 4 and 5 only, a 2xx
  // reply stays a success whatever text follows it.
  const effective =
    (basic === 4 || basic === 5) && (enhancedClass === 4 || enhancedClass === 5) ? enhancedClass : basic;
  return {
    code: (observation.code ?? '').toUpperCase(),
    command: (observation.command ?? '').trim().toUpperCase(),
    reply,
    enhanced,
    effective,
    text: `${observation.response ?? ''}\n${observation.message ?? ''}`.toLowerCase(),
    bodyWritten: observation.bodyWritten === true,
  };
}

function replyClassOf(effective: number | undefined): ReplyClass {
  if (effective === 2) return '2xx';
  if (effective === 4) return '4xx';
  if (effective === 5) return '5xx';
  return 'ambiguous';
}

/** Classifies one SMTP attempt by the first matching row of the table above. */
export function classifySmtpOutcome(observation: SmtpObservation): Classification {
  const f = facts(observation);
  const rule = TABLE.find((r) => r.when(f));
  // The last row always matches; the fallback only satisfies the type checker.
  const { outcome, reason, replyClass } = rule ?? FALLBACK;
  return {
    outcome,
    reason,
    replyClass: replyClass === 'reply' ? replyClassOf(f.effective) : replyClass,
    ...(f.enhanced === undefined ? {} : { enhancedStatus: f.enhanced }),
  };
}
