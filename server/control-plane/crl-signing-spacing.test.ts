import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readVerifiedCrl } from '../../trust/crl.js';
import { normalizeSerialHex } from '../../trust/serial-number.js';
import { createRevocationCheck } from '../gateway/revocation-check.js';
import type { ControlPlane } from './control-plane.js';
import { crlRepublishIntervalMsDefault, crlSigningSpacingMs } from './devices.js';
import { SqlCrlStore } from './stores/sql-crl-store.js';
import { makeHarness, openSecondControlPlane, storePairs, type Harness, type SecondControlPlane, type StorePair } from './test-support.js';

/**
 * Decision 0021, section "h7": the CRLs the republish passes sign are spaced for the deployment,
 * judged on the stored CRLs, not per replica. Two control planes on one database, each with its
 * own virtual clock (the second a little ahead), run their passes on a simulated schedule for
 * simulated hours while renewals supersede certificates at the rate of a fleet of 100,000 devices
 * (3.5 a minute); every signed CRL is counted where it is stored. Before, each replica signed at
 * each of its passes that found a number taken: two replicas signed up to twice as many CRLs as
 * one, and two passes at the same moment (or at the refresh age) signed one CRL each.
 */
const { pairs } = storePairs();
const intervalMs = crlRepublishIntervalMsDefault;
/** One hour, so the refresh age (two thirds of it, 40 min) comes within the simulated hours. */
const crlValidityMs = 60 * 60_000;
const refreshAgeMs = (crlValidityMs * 2) / 3;
const minuteMs = 60_000;
/** A fleet of 100,000 devices renewing 30-day certificates with 10 days left: about 5,000 a day. */
const supersessionsPerMinute = 3.5;

/** A small deterministic generator (mulberry32), so the schedule is the same at every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Every CRL a control plane signs is stored (storeIn, also under store): the count of signatures. */
let signed = 0;
const { storeIn } = SqlCrlStore.prototype;

function suite(pair: StorePair): void {
  describe(`CRL signing is spaced for the deployment, judged on the stored CRL (${pair.name})`, () => {
    let h: Harness;
    let second: SecondControlPlane;
    /** The second replica's clock runs this far ahead of the first's. */
    const secondAheadMs = 2_000;
    const random = seeded(7);

    before(async () => {
      SqlCrlStore.prototype.storeIn = async function (this: SqlCrlStore, ...args: Parameters<typeof storeIn>) {
        await storeIn.apply(this, args);
        signed += 1;
      };
      h = await makeHarness(pair.sql, { ...(pair.kv === undefined ? {} : { kv: pair.kv }), controlPlane: { crlValidityMs } });
      second = await openSecondControlPlane(h, pair, { crlValidityMs, clock: { nowMs: () => h.clock.nowMs() + secondAheadMs } });
    });
    after(async () => {
      SqlCrlStore.prototype.storeIn = storeIn;
      await second?.close();
      await h?.close();
      await pair.sql.cleanup();
    });

    /** Serials superseded and when, not yet seen in the latest stored CRL. */
    const unlisted = new Map<string, number>();
    let latest: { crlNumber: bigint; thisUpdateMs: number; nextUpdateMs: number; serials: Set<string> } | undefined;

    /** A renewal's transaction, as far as the CRL goes: the superseded certificate revoked and a CRL number taken, nothing signed. */
    const supersede = async (): Promise<string> => {
      const serial = normalizeSerialHex(`7f${randomBytes(15).toString('hex')}`);
      await h.db.transaction(async (tx) => {
        await h.cp.devices.revocations.revokeDeviceIn(tx, serial, 'superseded', new Date(h.clock.nowMs()), 'spacing-device');
        await h.cp.devices.revocations.nextCrlNumberIn(tx);
      });
      unlisted.set(serial, h.clock.nowMs());
      return serial;
    };

    /** The latest stored CRL (verified, read again only when its number changed); serials it lists leave `unlisted`. */
    const readLatest = async (): Promise<NonNullable<typeof latest>> => {
      const [top] = await h.db.query<{ crl_number: number | string; pem: string }>('SELECT crl_number, pem FROM crls ORDER BY crl_number DESC LIMIT 1');
      assert.ok(top !== undefined, 'a CRL is stored');
      if (latest === undefined || latest.crlNumber !== BigInt(top.crl_number)) {
        const verified = await readVerifiedCrl({ pem: top.pem, issuer: h.materials.pki.intermediate.certificate });
        latest = { crlNumber: verified.crlNumber, thisUpdateMs: verified.thisUpdateMs, nextUpdateMs: verified.nextUpdateMs, serials: verified.serials };
        for (const serial of [...unlisted.keys()]) if (latest.serials.has(serial)) unlisted.delete(serial);
      }
      return latest;
    };

    /**
     * Runs `durationMs` of simulated time: each replica's pass every interval at its phase (passes
     * at the same moment run at once, racing), and supersessions at `perMinute` (exponential gaps).
     * After each moment: every supersession one interval old is in the latest stored CRL, and that
     * CRL has a third of its validity left less one interval. Returns the CRLs signed meanwhile.
     */
    const simulate = async (options: { durationMs: number; replicas: ReadonlyArray<{ cp: ControlPlane; phaseMs: number }>; perMinute: number }): Promise<number> => {
      const startMs = h.clock.nowMs();
      const endMs = startMs + options.durationMs;
      const events: Array<{ atMs: number; pass?: ControlPlane }> = [];
      for (const { cp, phaseMs } of options.replicas) {
        for (let atMs = startMs + phaseMs; atMs < endMs; atMs += intervalMs) events.push({ atMs, pass: cp });
      }
      if (options.perMinute > 0) {
        for (let atMs = startMs - Math.log(1 - random()) * minuteMs / options.perMinute; atMs < endMs; atMs -= Math.log(1 - random()) * minuteMs / options.perMinute) {
          events.push({ atMs: Math.round(atMs) });
        }
      }
      // At the same moment a supersession comes before the passes, which then run together.
      events.sort((a, b) => a.atMs - b.atMs || (a.pass === undefined ? -1 : 0) - (b.pass === undefined ? -1 : 0));
      const signedBefore = signed;
      for (let i = 0; i < events.length;) {
        const atMs = events[i]!.atMs;
        h.clock.advance(atMs - h.clock.nowMs());
        const passes: ControlPlane[] = [];
        for (; i < events.length && events[i]!.atMs === atMs; i += 1) {
          const pass = events[i]!.pass;
          if (pass === undefined) await supersede();
          else passes.push(pass);
        }
        await Promise.all(passes.map((cp) => cp.devices.republishCrl()));
        const crl = await readLatest();
        for (const [serial, supersededAtMs] of unlisted) {
          // One interval while the replicas keep their schedule. One from before this schedule (a
          // replica restarted, stopped or moved) waits at most for the spacing of the last CRL
          // and then one interval: its signer's cadence is gone, any replica's next pass signs.
          const boundMs = supersededAtMs >= startMs ? intervalMs : crlSigningSpacingMs(intervalMs) + secondAheadMs + intervalMs;
          assert.ok(atMs - supersededAtMs < boundMs, `superseded ${serial} at +${supersededAtMs - startMs} ms is not in the stored CRL at +${atMs - startMs} ms (bound ${boundMs} ms)`);
        }
        assert.ok(crl.nextUpdateMs - atMs >= crlValidityMs / 3 - intervalMs, `the stored CRL's nextUpdate is ${crl.nextUpdateMs - atMs} ms ahead at +${atMs - startMs} ms`);
      }
      h.clock.advance(endMs - h.clock.nowMs());
      return signed - signedBefore;
    };

    it('two replicas sign about as many CRLs as one over simulated hours, and each superseded serial is in the stored CRL within one republish interval of a steady schedule', async () => {
      // The second replica's passes come 23 s after the first's (its clock 2 s ahead), then at the
      // same moment as the first's (racing for the counter's row lock).
      const one = await simulate({ durationMs: 60 * minuteMs, replicas: [{ cp: h.cp, phaseMs: 0 }], perMinute: supersessionsPerMinute });
      const two = await simulate({ durationMs: 60 * minuteMs, replicas: [{ cp: h.cp, phaseMs: 0 }, { cp: second.cp, phaseMs: 23_000 }], perMinute: supersessionsPerMinute });
      const racing = await simulate({ durationMs: 30 * minuteMs, replicas: [{ cp: h.cp, phaseMs: 0 }, { cp: second.cp, phaseMs: 0 }], perMinute: supersessionsPerMinute });
      // One replica signs at about each pass (a renewal comes in nearly every minute): about 60.
      assert.ok(one >= 40 && one <= 61, `one replica signed ${one} CRLs in 60 passes`);
      // Two replicas sign at most one CRL per interval, as one does; a few more than one replica
      // did only because, after a minute without a renewal, the other replica's pass comes sooner
      // than the signer's own (the signer then changes: a change is signed sooner, not twice).
      assert.ok(two <= 61 && two <= Math.ceil(one * 1.1), `two replicas signed ${two} CRLs in an hour (60 intervals), one replica ${one}`);
      assert.ok(racing <= 31, `two replicas passing at the same moment signed ${racing} CRLs in 30 intervals`);
      assert.ok(two >= 40 && racing >= 20, `the changes are still signed (${two}, ${racing})`);
    });

    it('a renewal is refused through the key/value store at once, and in the stored CRL by the next pass of the replica that signed last', async () => {
      // A pass of the first replica signs (an interval after the last signing, with a change).
      h.clock.advance(intervalMs);
      await supersede();
      const signedFirst = signed;
      await h.cp.devices.republishCrl();
      assert.equal(signed, signedFirst + 1);
      const serial = await supersede();
      await h.cp.devices.trust.certificatesRevoked('spacing-device', [serial], h.clock.nowMs());
      assert.equal(await createRevocationCheck({ kv: h.cp.context.kv })(serial), true, 'the gateways refuse it at once');
      const before = signed;
      // The second replica (23 s later) finds the stored CRL within the spacing and signs nothing;
      // the first one, an interval after it signed, signs the CRL that lists it.
      h.clock.advance(23_000);
      await second.cp.devices.republishCrl();
      assert.equal(signed, before, 'nothing signed within the spacing');
      assert.equal((await readLatest()).serials.has(serial), false);
      h.clock.advance(intervalMs - 23_000);
      await h.cp.devices.republishCrl();
      assert.equal(signed, before + 1);
      assert.equal((await readLatest()).serials.has(serial), true, 'listed one interval after the last signing');
    });

    it('with no change no CRL is signed until the stored one reaches the refresh age, then one, by one replica', async () => {
      const { thisUpdateMs: lastMs } = await readLatest();
      // The passes 5 s off the last signing's: both replicas (2 s apart) find the refresh age at the same pass.
      h.clock.advance(5_000);
      let signings = 0;
      let previous = lastMs;
      for (let k = 0; k < 3; k += 1) {
        // Both replicas pass at the same moment: the refresh is raced for.
        const count = await simulate({ durationMs: 20 * minuteMs, replicas: [{ cp: h.cp, phaseMs: 0 }, { cp: second.cp, phaseMs: 0 }], perMinute: 0 });
        const crl = await readLatest();
        if (crl.thisUpdateMs !== previous) {
          assert.ok(crl.thisUpdateMs - previous >= refreshAgeMs - 1_000, `a CRL signed ${crl.thisUpdateMs - previous} ms after the last one, with nothing changed`);
          previous = crl.thisUpdateMs;
        }
        signings += count;
      }
      // 60 min without a change after the last signing: the refresh age (40 min) passed once.
      assert.equal(signings, 1, 'one refresh, signed once for both replicas');
      assert.ok(previous - lastMs >= refreshAgeMs - 1_000 && previous - lastMs <= refreshAgeMs + intervalMs + secondAheadMs);
    });

    it('the spacing is a tenth short of the republish interval', () => {
      assert.equal(crlSigningSpacingMs(60_000), 54_000);
    });
  });
}

for (const pair of pairs) suite(pair);
