export * from './keys.js';
export * from './job-data.js';
export * from './content-store.js';
export * from './mail-queue.js';
