// CRLs signed, and the CPU they and the passes cost, by two control-plane replicas on one database
// over simulated time, while renewals supersede certificates at `perMinute` (decision 0021, section
// "h7"). Not a test: a measurement, run against a built tree (`node scripts/build.mjs` first),
// in-process on sql.js so that process.cpuUsage counts the SQL work too. Compare two trees in
// alternating runs:
//
//   node scripts/measure-crl-signing-spacing.mjs [repo root] [simulated minutes, default 1440] [seed entries, default 0] [per minute, default 3.5]
//
// Each run: a fresh harness (makeHarness, sql.js, embedded kv) and a second control plane on its
// database, `seed entries` revocations of serials not on record (always live, so all listed), one
// republish; then measured: the first replica's pass every 60 s, the second's 23 s after it, and
// supersessions (revoked as superseded and a CRL number taken, as a renewal's transaction does) at
// exponential gaps from a fixed seed. Counted: every CRL stored (SqlCrlStore.storeIn), per replica.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const root = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
const minutes = Number(process.argv[3] ?? 1440);
const entries = Number(process.argv[4] ?? 0);
const perMinute = Number(process.argv[5] ?? 3.5);
const intervalMs = 60_000;
const support = await import(`${root}/dist/server/control-plane/test-support.js`);
const { SqlCrlStore } = await import(`${root}/dist/server/control-plane/stores/sql-crl-store.js`);
const cpuMs = (usage) => Math.round((usage.user + usage.system) / 1000);

let seed = 7 >>> 0;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};

const h = await support.makeHarness(support.sqlJsTarget, {});
const second = await support.openSecondControlPlane(h, support.storePairs().pairs[0]);
let signer = 'none';
const signs = { first: 0, second: 0 };
const { storeIn } = SqlCrlStore.prototype;
SqlCrlStore.prototype.storeIn = async function (...args) {
  await storeIn.apply(this, args);
  signs[signer] += 1;
};
try {
  if (entries > 0) {
    await h.db.transaction(async (tx) => {
      for (let i = 0; i < entries; i += 1) {
        await tx.execute('INSERT INTO revocations (serial, device_id, reason, revoked_at) VALUES (?, ?, ?, ?)',
          [`7f${randomBytes(15).toString('hex')}`, `seed-${i}`, 'superseded', h.clock.nowMs()]);
      }
    });
  }
  signer = 'first';
  await h.cp.devices.republishCrl();
  signs.first = 0;
  h.clock.advance(intervalMs);
  const startMs = h.clock.nowMs();
  const endMs = startMs + minutes * 60_000;
  const events = [];
  for (let atMs = startMs; atMs < endMs; atMs += intervalMs) events.push({ atMs, pass: 'first' }, { atMs: atMs + 23_000, pass: 'second' });
  for (let atMs = startMs - Math.log(1 - random()) * 60_000 / perMinute; atMs < endMs; atMs -= Math.log(1 - random()) * 60_000 / perMinute) {
    events.push({ atMs: Math.round(atMs) });
  }
  events.sort((a, b) => a.atMs - b.atMs || (a.pass === undefined ? -1 : 0) - (b.pass === undefined ? -1 : 0));
  let supersessions = 0;
  const start = process.cpuUsage();
  for (const event of events) {
    if (event.atMs > h.clock.nowMs()) h.clock.advance(event.atMs - h.clock.nowMs());
    if (event.pass === undefined) {
      await h.db.transaction(async (tx) => {
        await h.cp.devices.revocations.revokeDeviceIn(tx, `7f${randomBytes(15).toString('hex')}`, 'superseded', new Date(h.clock.nowMs()), 'measure');
        await h.cp.devices.revocations.nextCrlNumberIn(tx);
      });
      supersessions += 1;
    } else {
      signer = event.pass;
      await (event.pass === 'first' ? h.cp : second.cp).devices.republishCrl();
    }
  }
  const cpu = process.cpuUsage(start);
  console.log(JSON.stringify({ root, minutes, entries, perMinute, supersessions, signs: signs.first + signs.second, signsFirst: signs.first, signsSecond: signs.second, cpuMs: cpuMs(cpu) }));
} finally {
  SqlCrlStore.prototype.storeIn = storeIn;
  await second.close();
  await h.close();
}
