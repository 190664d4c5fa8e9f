// `node --import ./scripts/test-ts-register.mjs`: runs TypeScript from the test cache
// (scripts/test-ts-cache.mjs) in this process and every process that inherits its flags.
import { register } from 'node:module';

register('./test-ts-hooks.mjs', import.meta.url);
// Stack traces name the TypeScript lines (the cached code carries an inline source map), as under tsx.
process.setSourceMapsEnabled(true);
