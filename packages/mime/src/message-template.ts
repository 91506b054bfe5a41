import {
  parseMessage,
  ValidationError,
  WHOLE_MESSAGE_FIELD,
  type Attachment,
  type AttachmentInput,
  type FieldIssue,
  type Mailbox,
  type MailboxInput,
  type Message,
  type ParseMessageOptions,
} from '@mailroom/core';

/**
 * A campaign's message as plain data. `subject`, `text` and `html` are Handlebars templates rendered per
 * recipient; everything else is the same for every recipient. Validated by the rules of a core Message
 * (addresses, allowlisted headers, base64 attachments, size) plus template syntax.
 */
export interface MessageTemplate {
  readonly from: MailboxInput;
  readonly replyTo?: MailboxInput;
  /** Handlebars, not HTML-escaped. */
  readonly subject: string;
  /** Handlebars, not HTML-escaped. */
  readonly text?: string;
  /** Handlebars, `{{x}}` HTML-escaped (`{{{x}}}` is not). */
  readonly html?: string;
  /** Extra headers, same allowlist as a Message's; literal (not templates). Per-recipient ones go in RecipientFields. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Base64 content only, as in a Message. */
  readonly attachments?: readonly AttachmentInput[];
}

/** A validated template: the shape of a core Message without recipient and tags. */
export interface TemplateModel {
  readonly from: Mailbox;
  readonly replyTo?: Mailbox;
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
  readonly headers: readonly (readonly [name: string, value: string])[];
  readonly attachments: readonly Attachment[];
}

/** Stands in for the recipient so the template can be checked by core's message rules. */
const PLACEHOLDER_RECIPIENT = 'recipient@template.invalid';

const REFUSED_TEMPLATE_KEYS = new Map<string, string>([
  ['to', 'is given per recipient when rendering (RecipientFields.to), not in the template'],
  ['tags', 'belong to the job that sends the message, not to the template'],
]);

/**
 * Validates a template with core's message rules (parseMessage), so every address, header, attachment and
 * size rule and its wording lives in one place. Throws ValidationError naming every bad field, or
 * ConfigError for a bad maxMessageBytes.
 */
export function parseTemplate(input: unknown, options: ParseMessageOptions = {}): TemplateModel {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ValidationError([{ field: WHOLE_MESSAGE_FIELD, message: 'must be an object' }]);
  }
  const issues: FieldIssue[] = [];
  const candidate: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    const refusal = REFUSED_TEMPLATE_KEYS.get(key);
    if (refusal !== undefined) issues.push({ field: key, message: refusal });
    // defineProperty: an own `__proto__` key from JSON stays a (refused) key and never becomes a prototype.
    else
      Object.defineProperty(candidate, key, { value, enumerable: true, writable: true, configurable: true });
  }
  candidate.to = PLACEHOLDER_RECIPIENT;
  let message: Message | undefined;
  try {
    message = parseMessage(candidate, options);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  if (message === undefined || issues.length > 0) throw new ValidationError(issues);
  return {
    from: message.from,
    ...(message.replyTo === undefined ? {} : { replyTo: message.replyTo }),
    subject: message.subject,
    ...(message.text === undefined ? {} : { text: message.text }),
    ...(message.html === undefined ? {} : { html: message.html }),
    headers: message.headers,
    attachments: message.attachments,
  };
}
