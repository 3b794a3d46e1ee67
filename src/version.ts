import { readFileSync } from 'node:fs';

/** Set by the bundler at build time; absent when running the tsc output directly. */
declare const START_WORKER_VERSION: string | undefined;

/** The package version. */
export const VERSION: string =
  typeof START_WORKER_VERSION === 'string'
    ? START_WORKER_VERSION
    : (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
