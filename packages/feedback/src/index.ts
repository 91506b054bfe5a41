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
  DEFAULT_VERP_LOCAL_PREFIX,
  decodeVerp,
  encodeVerp,
  validateVerpOptions,
  MAX_VERP_PREFIX_CHARS,
  MIN_VERP_SECRET_BYTES,
  VERP_MAC_CHARS,
} from './verp.js';
export type { VerpOptions } from './verp.js';
export { mailroomIdOf } from './message-ids.js';
export {
  FEEDBACK_EVENT_KINDS,
  feedbackEventOf,
  feedbackKindOf,
  type FeedbackEvent,
  type FeedbackEventContext,
  type FeedbackEventKind,
} from './feedback-event.js';
export {
  startFeedbackReceiver,
  DEFAULT_FEEDBACK_MAX_MESSAGE_BYTES,
  FEEDBACK_RECORD_RESULTS,
  type FeedbackEventMetrics,
  type FeedbackReceiver,
  type FeedbackReceiverLogger,
  type FeedbackReceiverOptions,
  type FeedbackReceiverStats,
  type FeedbackRecordOutcome,
  type FeedbackRecordResult,
  type RecordFeedback,
} from './feedback-receiver.js';
export {
  inboundRecipientCheck,
  type InboundMailbox,
  type InboundRecipientCheck,
} from './inbound-recipients.js';
export {
  UNSUBSCRIBE_MAIL_OUTCOMES,
  readUnsubscribeMail,
  unsubscribeTokenCandidates,
  validateUnsubscribeSecrets,
  type RecordUnsubscribe,
  type UnsubscribeMailOptions,
  type UnsubscribeMailOutcome,
  type UnsubscribeMailReading,
  type UnsubscribeRecordResult,
} from './unsubscribe-mail.js';
