// Node module hooks for checking the k6 scripts in Node (bench/k6/agent-script.test.ts): k6's
// built-in modules resolve to the small shims beside this file. Not used by k6 itself.
const shims = { 'k6/websockets': 'websockets.mjs', 'k6/timers': 'timers.mjs', 'k6/metrics': 'metrics.mjs', 'k6/encoding': 'encoding.mjs', 'k6/crypto': 'crypto.mjs', 'k6/http': 'http.mjs', k6: 'k6.mjs' };

export async function resolve(specifier, context, next) {
  const file = shims[specifier];
  if (file !== undefined) return { url: new URL(file, import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
