// Module hooks for the test files' processes (registered by scripts/test-ts-register.mjs): serve
// each .ts module's JavaScript from the cache of scripts/test-ts-cache.mjs, under its own URL.
// What tsx's hooks did for the tests, without loading a compiler in every process (see there).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compiledSource } from './test-ts-cache.mjs';

/**
 * Our sources import each other as './x.js' (TypeScript's NodeNext resolution); the file on disk
 * is x.ts. A .js that exists is left to node, as tsx does.
 */
export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (parent !== undefined && parent.startsWith('file:') && !parent.includes('/node_modules/') && specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('file:'))) {
    const url = new URL(specifier, parent);
    const path = fileURLToPath(url);
    if (!existsSync(path)) {
      const tsPath = `${path.slice(0, -'.js'.length)}.ts`;
      if (existsSync(tsPath)) return { url: pathToFileURL(tsPath).href, format: 'module', shortCircuit: true };
    }
  }
  if (specifier === '@sinclair/typebox' || specifier.startsWith('@sinclair/typebox/')) {
    // TypeBox's CommonJS build (its "require" export), not its ES modules: an import passes through
    // these hooks (a round trip to the hooks thread) for every module it loads, a require() inside
    // CommonJS does not (node 20). TypeBox's ESM build is ~250 modules, almost every test file loads
    // it (core/protocol/messages), and that cost each file's process ~0.6 s of CPU (a file that only
    // imports the control plane: 2.95 s before, 2.37 s after, median of 8, 5 December). Same code:
    // TypeBox builds both from one source, and its kinds are Symbol.for() keys, shared by either.
    return nextResolve(specifier, { ...context, conditions: [...context.conditions.filter((c) => c !== 'import'), 'require'] });
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    return { format: 'module', source: compiledSource(fileURLToPath(url)), shortCircuit: true };
  }
  return nextLoad(url, context);
}
