// Runs one VU of bench/k6/agent.js in Node for the k6 stand-in (fake-k6.mjs): k6's globals, then
// one agentSession() (one device session of the scenario's session_s, or SDC_SESSION_S), and,
// once the session has closed and nothing is left to do, what the shims recorded as one JSON
// object on stdout. One process per VU, as each k6 VU has a JavaScript runtime of its own (the
// script reads __VU while it runs).
// Usage: node --import ./register.mjs run-agent.mjs, with the -e variables and SDC_VU in the environment.
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const k6Dir = fileURLToPath(new URL('..', import.meta.url));
globalThis.__k6shim = { options: {}, metrics: {}, errors: [], closed: 0 };
globalThis.__ENV = { ...process.env };
globalThis.__VU = Number(process.env.SDC_VU ?? 1);
globalThis.__ITER = 0;
globalThis.open = (path) => readFileSync(isAbsolute(path) ? path : join(k6Dir, path), 'utf8');

const script = await import('../agent.js');
globalThis.__k6shim.options = script.options;
let printed = false;
// beforeExit: the session's socket and timers are gone (the script clears them on close).
process.on('beforeExit', () => {
  if (printed) return;
  printed = true;
  process.stdout.write(JSON.stringify({ vu: globalThis.__VU, options: script.options, shim: globalThis.__k6shim }));
});
await script.agentSession();
