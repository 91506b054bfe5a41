export { MailroomClient, DEFAULT_MAX_AGE_MS } from './mailroom-client.js';
export type {
  MailroomClientOptions,
  SendReceipt,
  SendOptions,
  Suppressions,
  MessageStatus,
  MessageState,
} from './mailroom-client.js';
export { ValidationError, IdempotencyConflictError, NotFoundError } from '@mailroom/core';
export {
  UnsubscribeTokenError,
  createUnsubscribeToken,
  verifyUnsubscribeToken,
  unsubscribeHeaders,
} from '@mailroom/core';
export {
  GLOBAL_SUPPRESSION_SCOPE,
  SUPPRESSION_REASONS,
  canonicalSuppressionAddress,
  suppressionScopeOf,
} from '@mailroom/queue';
export type {
  SuppressionEntry,
  SuppressionInput,
  SuppressionPage,
  SuppressionReason,
  SuppressionImportRow,
  SuppressionImportOptions,
  SuppressionImportResult,
  SuppressionRefusal,
} from '@mailroom/queue';
export type { MessageInput } from '@mailroom/core';
export * from './campaign-upload.js';
export * from './recipient-sources.js';
