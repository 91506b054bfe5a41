export * from './keys.js';
export * from './job-data.js';
export * from './content-store.js';
export * from './mail-queue.js';
export * from './lua-script.js';
export * from './ledger.js';
export * from './campaign-store.js';
export * from './rate-limiter.js';
