export * from './relay-config.js';
export * from './relay-transport.js';
export * from './compose-message.js';
export * from './pipelining/index.js';
