#!/usr/bin/env node
// Self time of a V8 .cpuprofile (`node --cpu-prof`, or `SDC_BENCH_CPU_PROF_DIR=D sdc bench
// connections ...`) by function and by file, over a window of the run, to see where a phase (a
// connect ramp, a steady hold) spends its time.
//
//   node scripts/cpuprofile-summary.mjs P.cpuprofile [--from-s A] [--to-s B] [--top 25] [--timeline 10]
//   node scripts/cpuprofile-summary.mjs P.cpuprofile --callers writeUtf8String [--depth 8] [--from-s A --to-s B]
//   node scripts/cpuprofile-summary.mjs P.cpuprofile --buckets [--from-s A --to-s B]
//
// --timeline S prints the busy milliseconds per S-second bucket, to find the phases' edges (a
// connect ramp is busy, a hold on the standard profile is quiet). --callers NAME lists the call
// paths (--depth frames up) under which NAME spent its self time. --buckets sorts the busy time
// into the kinds of work a message path does (Ed25519, GC, socket writes by the library that made
// them, JSON, each library, our own directories), judged by the sampled frame and its callers:
// a socket write is native code whose cost belongs to whoever asked for it.
//
// The profiler samples wall-clock time: a sample's time counts where the main thread was, also
// while the machine ran other processes, so on a loaded machine the figures are shares, not CPU
// seconds (read those from /proc/PID/stat). `(idle)` is left out; `(garbage collector)`,
// `(program)` and native functions (a socket write's `writeUtf8String`, `writev`) count as busy.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'from-s': { type: 'string' }, 'to-s': { type: 'string' }, top: { type: 'string' }, timeline: { type: 'string' }, callers: { type: 'string' }, depth: { type: 'string' }, buckets: { type: 'boolean' } },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: cpuprofile-summary.mjs P.cpuprofile [--from-s A] [--to-s B] [--top N] [--timeline S] [--callers NAME --depth D] [--buckets]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const nodeById = new Map(profile.nodes.map((node) => [node.id, node]));
const parentOf = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
const fromUs = values['from-s'] === undefined ? -Infinity : Number(values['from-s']) * 1e6;
const toUs = values['to-s'] === undefined ? Infinity : Number(values['to-s']) * 1e6;

/** Calls `visit(node, us, atUs)` for every sample in the window; a sample's time lasts until the next sample. */
function eachSample(visit) {
  let atUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    atUs += profile.timeDeltas[i];
    if (atUs < fromUs || atUs >= toUs) continue;
    visit(nodeById.get(profile.samples[i]), profile.timeDeltas[i + 1] ?? 0, atUs);
  }
}

const shortUrl = (url) => url.replace(/^file:\/\//, '').replace(/.*node_modules\//, 'node_modules/').replace(/.*\/(dist|src)\//, '') || '(native)';
const frameName = (callFrame) => `${callFrame.functionName || '(anonymous)'} ${shortUrl(callFrame.url)}:${callFrame.lineNumber + 1}`;
const addTo = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]);

function printCallers(name, depth) {
  const byPath = new Map();
  eachSample((node, us) => {
    if (node.callFrame.functionName !== name) return;
    const path = [];
    for (let id = parentOf.get(node.id); id !== undefined && path.length < depth; id = parentOf.get(id)) path.push(frameName(nodeById.get(id).callFrame));
    addTo(byPath, path.join(' < '), us);
  });
  for (const [path, us] of sorted(byPath).slice(0, 12)) console.log(`${(us / 1e3).toFixed(0).padStart(8)} ms  ${path}`);
}

function printSummary(top, bucketS) {
  const byFunction = new Map();
  const byFile = new Map();
  const timeline = new Map();
  let windowUs = 0;
  let busyUs = 0;
  eachSample((node, us, atUs) => {
    windowUs += us;
    if (node.callFrame.functionName === '(idle)') return;
    busyUs += us;
    addTo(byFunction, frameName(node.callFrame), us);
    addTo(byFile, shortUrl(node.callFrame.url), us);
    if (bucketS > 0) addTo(timeline, Math.floor(atUs / (bucketS * 1e6)), us);
  });
  console.log(`window ${(windowUs / 1e6).toFixed(1)} s, busy ${(busyUs / 1e6).toFixed(2)} s (${(100 * busyUs / Math.max(1, windowUs)).toFixed(1)} %)`);
  for (const [title, map] of [['self time by function', byFunction], ['self time by file', byFile]]) {
    console.log(`-- ${title}`);
    for (const [key, us] of sorted(map).slice(0, top)) console.log(`${(us / 1e3).toFixed(0).padStart(8)} ms ${(100 * us / Math.max(1, busyUs)).toFixed(1).padStart(5)} %  ${key}`);
  }
  if (bucketS > 0) {
    console.log(`-- busy ms per ${bucketS} s`);
    for (const [bucket, us] of [...timeline].sort((a, b) => a[0] - b[0])) console.log(`${String(bucket * bucketS).padStart(6)} s ${(us / 1e3).toFixed(0).padStart(7)}`);
  }
}

/** Kinds of work, first match wins; `frames` is the sampled frame then its callers, as "function url". */
const isWrite = (frames) => frames.slice(0, 3).some((f) => /^(handleWriteReq|writevGeneric) /.test(f));
const bucketRules = [
  ['Ed25519 verify', (frames) => frames.slice(0, 4).some((f) => f.startsWith('verifyOneShot '))],
  ['Ed25519 sign', (frames) => frames.slice(0, 4).some((f) => f.startsWith('signOneShot '))],
  ['garbage collection', (frames) => frames[0].startsWith('(garbage collector) ')],
  ['socket writes: mysql2', (frames) => isWrite(frames) && frames.some((f) => /node_modules\/mysql2\//.test(f))],
  ['socket writes: ioredis', (frames) => isWrite(frames) && frames.some((f) => /node_modules\/ioredis\//.test(f))],
  ['socket writes: ws', (frames) => isWrite(frames) && frames.some((f) => /node_modules\/ws\//.test(f))],
  ['socket writes: other (HTTP)', isWrite],
  ['TLS contexts and handshakes', (frames) => frames.slice(0, 6).some((f) => /secure-context|_tls_wrap|^setSession |^addCACert |^initEDRaw /.test(f))],
  ['canonical JSON, strict parsing', (frames) => /canonical-json|strict-json/.test(frames[0])],
  ['mysql2 (and its escaping)', (frames) => /node_modules\/(mysql2|sql-escaper|named-placeholders|lru\.min)/.test(frames[0])],
  ['ioredis', (frames) => /node_modules\/(ioredis|redis-parser|standard-as-callback|cluster-key-slot|denque)/.test(frames[0])],
  ['ws', (frames) => /node_modules\/ws\//.test(frames[0])],
  ['fastify, Node HTTP', (frames) => /node_modules\/(fastify|find-my-way|avvio|@fastify|fast-json|ajv|pino)|node:_http_|node:http/.test(frames[0])],
  ['core/ (other)', (frames) => /\/core\//.test(frames[0]) && !/node_modules/.test(frames[0])],
  ['server/gateway/', (frames) => /\/server\/gateway\//.test(frames[0])],
  ['server/control-plane/', (frames) => /\/server\/control-plane\//.test(frames[0])],
  ['server/stores/', (frames) => /\/server\/stores\//.test(frames[0])],
  ['runtime/, bench/, cli/', (frames) => /\/(runtime|bench|cli)\//.test(frames[0]) && !/node_modules/.test(frames[0])],
  ['Node internals', (frames) => /node:/.test(frames[0])],
  ['other native', (frames) => frames[0].endsWith(' ')],
  ['other', () => true],
];

function printBuckets() {
  const byBucket = new Map();
  let busyUs = 0;
  eachSample((node, us) => {
    if (node.callFrame.functionName === '(idle)') return;
    busyUs += us;
    const frames = [];
    for (let id = node.id; id !== undefined && frames.length < 60; id = parentOf.get(id)) {
      const { callFrame } = nodeById.get(id);
      frames.push(`${callFrame.functionName || '(anonymous)'} ${callFrame.url}`);
    }
    addTo(byBucket, bucketRules.find(([, test]) => test(frames))[0], us);
  });
  console.log(`busy ${(busyUs / 1e6).toFixed(2)} s`);
  for (const [bucket, us] of sorted(byBucket)) console.log(`${(us / 1e3).toFixed(0).padStart(8)} ms ${(100 * us / Math.max(1, busyUs)).toFixed(1).padStart(5)} %  ${bucket}`);
}

if (values.buckets) printBuckets();
else if (values.callers !== undefined) printCallers(values.callers, Number(values.depth ?? 8));
else printSummary(Number(values.top ?? 25), Number(values.timeline ?? 0));
