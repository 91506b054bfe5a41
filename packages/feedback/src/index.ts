export { parseFeedback, DEFAULT_MAX_FEEDBACK_BYTES } from './parse-feedback.js';
export type { ParseFeedbackOptions } from './parse-feedback.js';
export type {
  BounceClass,
  DsnRecipient,
  FeedbackKind,
  FeedbackReport,
  MailroomIdSource,
  ReportFormat,
} from './feedback-report.js';
export type { Generator } from './detect-generator.js';
export {
  decodeVerp,
  encodeVerp,
  validateVerpOptions,
  MAX_VERP_PREFIX_CHARS,
  MIN_VERP_SECRET_BYTES,
  VERP_MAC_CHARS,
} from './verp.js';
export type { VerpOptions } from './verp.js';
export { mailroomIdOf } from './message-ids.js';
