import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** Version of the Mailroom worker package. */
export const VERSION: string = (require('../package.json') as { version: string }).version;
