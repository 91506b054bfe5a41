export { MailroomClient, DEFAULT_MAX_AGE_MS } from './mailroom-client.js';
export type { MailroomClientOptions, SendReceipt } from './mailroom-client.js';
export { ValidationError } from '@mailroom/core';
export type { MessageInput } from '@mailroom/core';
