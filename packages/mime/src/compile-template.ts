import { ValidationError, type FieldIssue } from '@mailroom/core';
import { compileMergeTemplate, type MergeTemplate } from './merge-template.js';
import { parseTemplate, type TemplateModel } from './message-template.js';
import { MessageProgram } from './message-program.js';
import type { RecipientFields } from './recipient-fields.js';
import { feedbackIdHeader } from './feedback-id.js';

export interface CompileTemplateOptions {
  /** Largest message accepted, template and every render, as encoded MIME in bytes. Default 10 MiB (core's). */
  readonly maxMessageBytes?: number;
  /**
   * Adds Gmail's feedback-loop header to every message, `Feedback-ID: <campaign>:<tag>:<From domain>:mailroom`
   * (see feedbackIdValue): the campaign id and its first tag (`campaign` when it has none).
   */
  readonly feedbackId?: { readonly campaign: string; readonly tag?: string | undefined };
}

/** A template compiled once; render() builds each recipient's message from precomputed parts. */
export interface CompiledTemplate {
  /**
   * The RFC 5322 message for one recipient: CRLF line ends, 7-bit unless a message/* attachment needs 8bit,
   * NOT dot-stuffed. Throws ValidationError naming the field (`to.name`, `subject`, `headers.X`,
   * `messageId`, `date`, `text`, `html`, `(message)` for the size).
   */
  render(fields: RecipientFields): Buffer;
  /** Root-level merge variables used by subject, text and html, sorted (`name`, `user.city`). */
  readonly mergeFields: readonly string[];
}

class CompiledMessageTemplate implements CompiledTemplate {
  constructor(
    private readonly program: MessageProgram,
    readonly mergeFields: readonly string[],
  ) {}

  render(fields: RecipientFields): Buffer {
    return this.program.render(fields);
  }
}

type Field = 'subject' | 'text' | 'html';

function compileField(source: unknown, field: Field, issues: FieldIssue[]): MergeTemplate | undefined {
  if (typeof source !== 'string' || source === '') return undefined;
  const compiled = compileMergeTemplate(source, field, { escapeHtml: field === 'html' });
  if (Array.isArray(compiled)) {
    issues.push(...compiled);
    return undefined;
  }
  return compiled;
}

/**
 * Validates and compiles a campaign template once: the MIME structure, boundaries, From/Reply-To, extra
 * headers, attachments and every part without merge fields are encoded here; subject, text and html are
 * compiled as Handlebars. Throws ValidationError naming every bad field (template syntax errors name
 * `subject`, `text` or `html`), ConfigError for a bad option.
 *
 * @param template a MessageTemplate, or untrusted input (e.g. parsed JSON) of that shape
 */
export function compileTemplate(template: unknown, options: CompileTemplateOptions = {}): CompiledTemplate {
  const issues: FieldIssue[] = [];
  let model: TemplateModel | undefined;
  try {
    model = parseTemplate(template, options);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  // Template syntax is checked even when other fields failed, so every problem is reported at once.
  const raw = (typeof template === 'object' && template !== null ? template : {}) as Record<string, unknown>;
  const subject = compileField(raw.subject, 'subject', issues);
  const text = compileField(raw.text, 'text', issues);
  const html = compileField(raw.html, 'html', issues);
  if (model === undefined || subject === undefined || issues.length > 0) throw new ValidationError(issues);

  const program = new MessageProgram(
    {
      from: model.from,
      ...(model.replyTo === undefined ? {} : { replyTo: model.replyTo }),
      subject,
      ...(model.text === undefined || text === undefined
        ? {}
        : { text: { field: 'text', ...textSource(text) } }),
      ...(model.html === undefined || html === undefined
        ? {}
        : { html: { field: 'html', ...textSource(html) } }),
      headers: model.headers,
      ...(options.feedbackId === undefined
        ? {}
        : {
            mailroomHeaders: {
              names: ['Feedback-ID'],
              lines: feedbackIdHeader({
                ...options.feedbackId,
                senderDomain: model.from.address.slice(model.from.address.lastIndexOf('@') + 1),
              }),
            },
          }),
      attachments: model.attachments,
    },
    options.maxMessageBytes,
  );
  const mergeFields = [
    ...new Set([...subject.fields, ...(text?.fields ?? []), ...(html?.fields ?? [])]),
  ].sort();
  return new CompiledMessageTemplate(program, Object.freeze(mergeFields));
}

function textSource(template: MergeTemplate): {
  staticText: string | undefined;
  render(vars: object): string;
} {
  return { staticText: template.staticText, render: (vars) => template.render(vars) };
}
