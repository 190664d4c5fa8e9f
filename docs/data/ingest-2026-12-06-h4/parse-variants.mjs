const root = process.argv[2] ?? '/tmp/h4-base';
const { parseStrictJsonWithForm } = await import(`${root}/dist/core/protocol/strict-json.js`);
const { AgentConnection } = await import(`${root}/dist/core/protocol/session/agent-connection.js`);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const L = { depthMax: 32, stringLengthMax: 16384, arrayLengthMax: 4096, objectMembersMax: 256, frameBytesMax: 65536 };
// returns serialization or undefined
function canon(value, depth) {
  if (typeof value === 'string') { return value.length > L.stringLengthMax ? undefined : JSON.stringify(value); }
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (depth >= L.depthMax) return undefined;
  if (Array.isArray(value)) {
    if (value.length > L.arrayLengthMax) return undefined;
    let out = '[';
    for (let i = 0; i < value.length; i++) { const s = canon(value[i], depth + 1); if (s === undefined) return undefined; out += (i === 0 ? '' : ',') + s; }
    return out + ']';
  }
  let out = '{', prev, n = 0;
  for (const name in value) {
    if (++n > L.objectMembersMax || name.length > L.stringLengthMax || (prev !== undefined && !(prev < name))) return undefined;
    const s = canon(value[name], depth + 1); if (s === undefined) return undefined;
    out += (prev === undefined ? '"' : ',"') + name + '":' + s; prev = name;
  }
  return out + '}';
}
function fast(bytes, member) {
  const text = utf8Decoder.decode(bytes);
  if (text.indexOf('\\') !== -1) return undefined;
  let value; try { value = JSON.parse(text); } catch { return undefined; }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  let out = '{', prev, n = 0, memberChars;
  for (const name in value) {
    if (++n > L.objectMembersMax || (prev !== undefined && !(prev < name))) return undefined;
    const s = canon(value[name], 1); if (s === undefined) return undefined;
    const start = out.length;
    out += (prev === undefined ? '"' : ',"') + name + '":' + s; prev = name;
    if (name === member && start > 1) memberChars = { start, end: out.length };
  }
  out += '}';
  if (out !== text) return undefined;
  return { value, canonical: true, memberBytes: memberChars, text };
}
const crypto = (await import(`${root}/dist/runtime/session-crypto-node.js`)).createNodeSessionKeyCrypto();
// build a real frame quickly via canonical form of an envelope-like object
const metrics = { cpu_pct: 12.5, disk_pct: 61, mem_pct: 40.25, net_rx_bytes_per_sec: 18000, net_tx_bytes_per_sec: 4200, process_count: 212 };
const env = { body: { metrics, prev_hash: 'a'.repeat(64), sampled_at: 1765000000000 }, device_id: 'ingest-abcd-00001', id: 'm_abcdefghijklmnop', seq: 12345, session_id: 's_abcdefghijklmnopqrstuv', sig: { alg: 'HMAC-SHA256', kid: 'session', value: 'x'.repeat(43) }, ts: 1765000000000, type: 'TELEMETRY', v: 1 };
const bytes = new TextEncoder().encode(JSON.stringify(env));
const a = parseStrictJsonWithForm(bytes, 'sig'), b = fast(bytes, 'sig');
console.log(bytes.length, JSON.stringify(a.memberBytes), JSON.stringify(b.memberBytes), a.canonical, JSON.stringify(a.value) === JSON.stringify(b.value));
for (let r = 0; r < 3; r++) for (const [n, f] of [['strict', () => parseStrictJsonWithForm(bytes, 'sig')], ['fast', () => fast(bytes, 'sig')]]) {
  const c0 = process.cpuUsage(); const N = 100000; for (let i = 0; i < N; i++) f(); const c = process.cpuUsage(c0); console.log(n, ((c.user + c.system) / N).toFixed(2));
}
