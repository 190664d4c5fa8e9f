// Runs bench/k6/api.js in Node for api-script.test.ts: k6's globals, setup(), then SDC_ITERATIONS
// iterations of the scenario function one after another (the executor's arrival schedule is
// k6's, not reproduced here); prints what the shims recorded as one JSON object.
// Usage: node --import ./register.mjs run-api.mjs, with the -e variables in the environment.
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const k6Dir = fileURLToPath(new URL('..', import.meta.url));
globalThis.__k6shim = { caFile: process.env.SDC_CA_FILE, requests: [], checks: [], metrics: {} };
globalThis.__ENV = { ...process.env };
globalThis.__VU = 1;
globalThis.__ITER = 0;
globalThis.open = (path) => readFileSync(isAbsolute(path) ? path : join(k6Dir, path), 'utf8');

const script = await import('../api.js');
const data = script.setup();
for (let i = 0; i < Number(process.env.SDC_ITERATIONS ?? 3); i++) {
  globalThis.__ITER = i;
  script.createAndPoll(data);
}
process.stdout.write(JSON.stringify({ options: script.options, shim: globalThis.__k6shim }));
