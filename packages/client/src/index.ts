export { MailroomClient, DEFAULT_MAX_AGE_MS } from './mailroom-client.js';
export type {
  MailroomClientOptions,
  SendReceipt,
  SendOptions,
  MessageStatus,
  MessageState,
} from './mailroom-client.js';
export { ValidationError, IdempotencyConflictError, NotFoundError } from '@mailroom/core';
export type { MessageInput } from '@mailroom/core';
export * from './campaign-upload.js';
export * from './recipient-sources.js';
