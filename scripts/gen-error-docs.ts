// Regenerates docs/errors.md from the error registry.
import { writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../core/errors/error-docs.js';

writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorDocs());
