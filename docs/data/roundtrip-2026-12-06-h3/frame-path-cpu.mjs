// Reproduce: two worktrees, /tmp/h3/base (abfcbe3) and /tmp/h3/head (abfcbe3 + b4d5968), each with node_modules linked and `node scripts/build.mjs` run; then `node frame-path-cpu.mjs`.
// CPU per command of the command's three device frames on their way gateway -> bus -> control plane check,
// base tree's code against head tree's, in one process, alternating rounds (process.cpuUsage).
async function load(root) {
  const d = root + '/dist/';
  return {
    canon: (await import(d+'core/protocol/canonical-json.js')).canonicalize,
    env: await import(d+'core/protocol/envelope.js'),
    bus: await import(d+'server/bus-contract/entries.js'),
    ed: await import(d+'runtime/ed25519-node.js'),
    kid: (await import(d+'core/protocol/session/gateway-connection.js')).deviceKid,
  };
}
const trees = { base: await load('/tmp/h3/base'), head: await load('/tmp/h3/head') };
const deviceId = 'dev-0123456789abcdef';
const tp = '00-'+'a'.repeat(32)+'-'+'b'.repeat(16)+'-01';
function setup(t, useNew) {
  const provider = t.ed.createNodeEd25519Provider({ verifiedCacheEntriesMax: 4096 });
  const seed = new Uint8Array(32).fill(3); const pub = provider.publicKeyFromSeed(seed);
  const frameOf = (type, body, seq) => t.canon(t.env.signEnvelope({ fields: { v:1, type, id:'f000000000000000000'+seq, device_id:deviceId, session_id:'s-0123456789', seq, ts:1765000000000, body }, kid: t.kid(deviceId), seed, provider }));
  const cmd = '01JD0000000000000000000000';
  const frames = [
    ['command_progress', 'COMMAND_ACK', { command_id:cmd, device_id:deviceId, gateway_id:'gw-1', at_ms:1765000000000, event:'ack', attempt:1, traceparent: tp, frame: frameOf('COMMAND_ACK', { command_id:cmd, device_seq:4, stage:'received', traceparent: tp }, 1) }],
    ['command_progress', 'COMMAND_ACK', { command_id:cmd, device_id:deviceId, gateway_id:'gw-1', at_ms:1765000000001, event:'start', attempt:1, traceparent: tp, frame: frameOf('COMMAND_ACK', { command_id:cmd, device_seq:4, stage:'executing', traceparent: tp }, 2) }],
    ['command_result', 'COMMAND_RESULT', { command_id:cmd, device_id:deviceId, gateway_id:'gw-1', at_ms:1765000000002, traceparent: tp, frame: frameOf('COMMAND_RESULT', { command_id:cmd, device_seq:4, status:'succeeded', output:{ kernel:'pong' }, traceparent: tp }, 3) }],
  ];
  const resolveKey = (kid) => kid === t.kid(deviceId) ? pub : undefined;
  const check = useNew
    ? (text) => { if (!text.isWellFormed()) throw new Error('x'); const { envelope, signingInput } = t.env.decodeEnvelopeForVerify(Buffer.from(text, 'utf8')); return t.env.verifyDecodedEnvelope({ envelope, signingInput, resolveKey, provider }); }
    : (text) => t.env.verifyEnvelope({ envelope: t.env.decodeEnvelope(text), resolveKey, provider });
  return () => { for (const [kind, , data] of frames) { const fields = t.bus.encodeBusEntry(kind, data); const dec = t.bus.decodeBusEntry({ ...fields }); check(dec.data.frame); } };
}
const fns = { base: setup(trees.base, false), head: setup(trees.head, true) };
const res = { base: [], head: [] };
for (let r = 0; r < 40; r++) for (const k of (r % 2 ? ['base','head'] : ['head','base'])) {
  const n = 3000; const c = process.cpuUsage(); for (let i = 0; i < n; i++) fns[k](); const u = process.cpuUsage(c); res[k].push((u.user + u.system) / n);
}
for (const k in res) { const a = res[k].slice(6).sort((x, y) => x - y); console.log(k, 'us per command (3 frames): median', a[a.length >> 1].toFixed(1), 'min', a[0].toFixed(1), 'max', a[a.length-1].toFixed(1)); }
