/**
 * Label values for SMTP replies, from allowlists only: a reply can never add a label value that is not
 * written here, whatever text a relay sends.
 */

/** Where in the SMTP session a reply came: the command it answered (`data` includes the final dot). */
export const SMTP_STAGES = ['connect', 'ehlo', 'starttls', 'auth', 'mail', 'rcpt', 'data', 'other'] as const;
export type SmtpStage = (typeof SMTP_STAGES)[number];

/**
 * Reply codes counted as themselves: RFC 5321 section 4.2.3, STARTTLS (RFC 3207), AUTH (RFC 4954) and
 * 521/556 (RFC 7504). Any other code is counted by its class (`4xx`).
 */
export const SMTP_REPLY_CODES = [
  '250',
  '251',
  '252',
  '421',
  '432',
  '450',
  '451',
  '452',
  '454',
  '455',
  '500',
  '501',
  '502',
  '503',
  '504',
  '521',
  '523',
  '530',
  '534',
  '535',
  '538',
  '550',
  '551',
  '552',
  '553',
  '554',
  '555',
  '556',
] as const;

/** Class labels for codes outside {@link SMTP_REPLY_CODES}. */
export const SMTP_REPLY_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;

/**
 * The subject.detail pairs of the IANA "SMTP Enhanced Status Codes" registry (RFC 3463, 3886, 4468, 4954,
 * 5248, 6531, 6710, 7293, 7372, 7505, 8617, 8689 and the X.7.28 mail-flood entry).
 */
export const ENHANCED_STATUS_DETAILS = [
  '0.0',
  ...range('1', 0, 10),
  ...range('2', 0, 4),
  ...range('3', 0, 6),
  ...range('4', 0, 7),
  ...range('5', 0, 6),
  ...range('6', 0, 10),
  ...range('7', 0, 30),
] as const;

function range(subject: string, from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${subject}.${from + i}`);
}

/** The `enhanced` label of a reply without an enhanced status code. */
export const NO_ENHANCED_STATUS = 'none';

/** Every value the `enhanced` label can take: registered codes in classes 2, 4 and 5, `N.other`, `none`. */
export const ENHANCED_STATUS_LABELS: readonly string[] = Object.freeze([
  ...['2', '4', '5'].flatMap((cls) => [...ENHANCED_STATUS_DETAILS.map((d) => `${cls}.${d}`), `${cls}.other`]),
  NO_ENHANCED_STATUS,
]);

const STAGE_BY_COMMAND: Readonly<Record<string, SmtpStage>> = {
  CONN: 'connect',
  GREETING: 'connect',
  EHLO: 'ehlo',
  HELO: 'ehlo',
  LHLO: 'ehlo',
  STARTTLS: 'starttls',
  AUTH: 'auth',
  MAIL: 'mail',
  RCPT: 'rcpt',
  DATA: 'data',
  BDAT: 'data',
};

/**
 * The stage of the command a reply answered, from the command as nodemailer and Mailroom's senders name
 * it (`CONN`, `EHLO`, `AUTH PLAIN`, `MAIL FROM`, `RCPT TO`, `DATA`); `other` for anything else.
 */
export function smtpStageLabel(command: string | undefined): SmtpStage {
  const verb = (command ?? '').trim().split(/\s+/)[0]?.toUpperCase() ?? '';
  return STAGE_BY_COMMAND[verb] ?? 'other';
}

const CODES = new Set<string>(SMTP_REPLY_CODES);

/** The `code` label: the code itself when allowlisted, else its class (`4xx`); undefined when it is no reply code. */
export function replyCodeLabel(code: number | undefined): string | undefined {
  if (code === undefined || !Number.isInteger(code) || code < 200 || code > 599) return undefined;
  const text = String(code);
  return CODES.has(text) ? text : `${text.charAt(0)}xx`;
}

const DETAILS = new Set<string>(ENHANCED_STATUS_DETAILS);

/**
 * The `enhanced` label: the status when its subject.detail is registered and its class is 2, 4 or 5,
 * `N.other` for an unregistered one of class N, `none` when there is none (or it is malformed).
 */
export function enhancedStatusLabel(status: string | undefined): string {
  const match = /^([245])\.(\d{1,3}\.\d{1,3})$/.exec(status?.trim() ?? '');
  if (!match) return NO_ENHANCED_STATUS;
  const [, cls, detail] = match as unknown as [string, string, string];
  // Leading zeros (`5.01.1`) are not in the registry's spelling.
  const canonical = detail
    .split('.')
    .map((n) => String(Number(n)))
    .join('.');
  return DETAILS.has(canonical) && canonical === detail ? `${cls}.${detail}` : `${cls}.other`;
}
