export { compileTemplate, type CompiledTemplate, type CompileTemplateOptions } from './compile-template.js';
export { compileMessage, type CompileMessageOptions } from './compile-message.js';
export { parseTemplate, type MessageTemplate, type TemplateModel } from './message-template.js';
export type { RecipientFields } from './recipient-fields.js';
export { encodeQuotedPrintable, QP_MAX_LINE_CHARS } from './quoted-printable.js';
export { encodeTextBody, type EncodedText, type TextTransferEncoding } from './text-body.js';
export { BOUNDARY_MARKER } from './boundaries.js';
export * from './dkim/index.js';
export {
  FEEDBACK_ID_SENDER_ID,
  feedbackIdHeader,
  feedbackIdValue,
  type FeedbackIdFields,
} from './feedback-id.js';
