// The agent's check of a pushed POLICY_BUNDLE frame (h10): decode, then verifyPolicyBundle with the
// bundle's text cut from the canonical frame (receivedBundleText, "received") against the bundle
// written out again (no text, "written", as before), in one process of the after tree (`node
// bundle-bench.mjs /tmp/h10/after`), alternating rounds of 20,000; process.cpuUsage per check. The
// default policy's bundle; the signature check is a stub on both sides (modelled crypto).
const root = process.argv[2] ?? '/tmp/h10/after';
const { createNobleEd25519Provider } = await import(`${root}/dist/core/crypto/ed25519-noble.js`);
const { defaultPolicy } = await import(`${root}/dist/core/protocol/policy.js`);
const { cutPolicyBundle, signPolicyBundle, verifyPolicyBundle, receivedBundleText } = await import(`${root}/dist/core/protocol/policy-bundle.js`);
const { signAndEncodeEnvelope, decodeEnvelopeForVerify } = await import(`${root}/dist/core/protocol/envelope.js`);
const provider = createNobleEd25519Provider();
const seed = new Uint8Array(32).fill(7);
const publicKey = provider.publicKeyFromSeed(seed);
// A stand-in for the signature check: the modelled crypto's verify is cheap; Ed25519 would dominate both sides equally.
const modelProvider = { ...provider, verify: () => true };
const issuedAtMs = 1_764_000_000_000;
const signed = signPolicyBundle({ bundle: cutPolicyBundle({ policy: defaultPolicy, version: defaultPolicy.revision, device: { id: 'sim-00001', tags: [] }, issuedAtMs }), kid: 'cp-1', seed, provider });
const fields = { v: 1, type: 'POLICY_BUNDLE', id: 'f_1', device_id: 'sim-00001', session_id: 'sess_1', seq: 3, ts: issuedAtMs, body: { signed } };
const { bytes } = signAndEncodeEnvelope({ fields, kid: 'gw', seed, provider });
console.log('frame bytes', bytes.length);
const check = (useText) => {
  const { envelope, text, canonical } = decodeEnvelopeForVerify(bytes);
  const cut = useText ? receivedBundleText({ envelope, body: envelope.body, text, canonical }) : undefined;
  if (useText && cut === undefined) throw new Error('not cut');
  return verifyPolicyBundle({ signed: envelope.body.signed, deviceId: 'sim-00001', resolveKey: () => publicKey, provider: modelProvider, nowMs: issuedAtMs + 1000, ...(cut === undefined ? {} : { receivedBundleText: cut }) });
};
const n = 20000;
const round = (useText) => { const t = process.cpuUsage(); for (let i = 0; i < n; i++) check(useText); const d = process.cpuUsage(t); return (d.user + d.system) / n; };
for (let i = 0; i < 2; i++) { round(false); round(true); }
const rows = { written: [], received: [] };
for (let r = 0; r < 5; r++) { if (r % 2) { rows.received.push(round(true)); rows.written.push(round(false)); } else { rows.written.push(round(false)); rows.received.push(round(true)); } }
for (const [k, v] of Object.entries(rows)) console.log(k.padEnd(9), v.map((x) => x.toFixed(1)).join(' / '), 'us per check (decode + cut + verify, modelled signature)');
