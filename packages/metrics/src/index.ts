export * from './worker-metrics.js';
export { Registry } from 'prom-client';
