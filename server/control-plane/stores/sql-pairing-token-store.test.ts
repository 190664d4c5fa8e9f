import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { systemRandom } from '../../../runtime/system.js';
import { createPairingTokens, hashPairingToken, pairingWrongDeviceTriesMax, type PairingConsumeResult } from '../../../trust/pairing-tokens.js';
import { closeHarnessAndPair, makeHarness, storePairs, type Harness } from '../test-support.js';
import { SqlPairingTokenStore } from './sql-pairing-token-store.js';

/**
 * SqlPairingTokenStore.consume checks the claim (unused, unexpired, this device's) in the UPDATE
 * that marks the token used (review h9, finding 4): a refused claim does not spend the token, and
 * of concurrent claims exactly one consumes it. A claim for another device is counted in that
 * UPDATE, and the pairingWrongDeviceTriesMax-th spends the token, however many arrive at once. On
 * sql.js, and on MySQL when MYSQL_URL is set (its pool runs the claims on separate connections).
 */
const minuteMs = 60_000;
const usedAtOf = (result: PairingConsumeResult) => (result.outcome === 'unknown' ? undefined : result.record.usedAtMs);
const { pairs, skipped } = storePairs();
for (const pair of pairs) {
  describe(`SQL pairing tokens on ${pair.name}`, () => {
    let h: Harness | undefined;
    after(() => closeHarnessAndPair(h, pair));

    const tokensFor = async (deviceIds: string[], now: Date, ttlMs = 15 * minuteMs) => {
      h ??= await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
      const store = new SqlPairingTokenStore(h.db);
      const created = await createPairingTokens({ store, deviceIds, now, random: systemRandom, ttlMs });
      return { store, hashes: created.map((c) => hashPairingToken(c.token)) };
    };

    it('a claim for another device, or past expiry, is refused and leaves the token unused; its own device then consumes it once', async () => {
      const now = new Date(1_800_000_000_000);
      const { store, hashes: [hash] } = await tokensFor(['sp-own'], now);
      const wrong = await store.consume(hash!, { deviceId: 'sp-other', now });
      assert.equal(wrong.outcome, 'other-device');
      assert.equal(usedAtOf(wrong), null);
      assert.equal((await store.consume(hash!, { deviceId: 'sp-own', now: new Date(now.getTime() + 15 * minuteMs) })).outcome, 'expired');
      assert.equal((await store.consume(hash!, { deviceId: 'sp-own', now })).outcome, 'consumed');
      assert.equal((await store.consume(hash!, { deviceId: 'sp-own', now })).outcome, 'already-used');
      assert.equal((await store.consume(hash!, { deviceId: 'sp-other', now })).outcome, 'already-used', 'used is told before another device\'s');
      assert.equal((await store.consume('0'.repeat(64), { deviceId: 'sp-own', now })).outcome, 'unknown');
    });

    it('of concurrent claims, with wrong ones among them, exactly one consumes the token', async () => {
      const now = new Date(1_800_000_000_000);
      const { store, hashes } = await tokensFor(['sp-race-1', 'sp-race-2', 'sp-race-3'], now);
      for (const [i, hash] of hashes.entries()) {
        const own = { deviceId: `sp-race-${i + 1}`, now };
        const other = { deviceId: 'sp-race-x', now };
        const outcomes = await Promise.all([own, other, own, other, own, own].map((claim) => store.consume(hash, claim)));
        assert.equal(outcomes.filter((o) => o.outcome === 'consumed').length, 1, JSON.stringify(outcomes.map((o) => o.outcome)));
        for (const index of [1, 3]) assert.ok(['other-device', 'already-used'].includes(outcomes[index]!.outcome), outcomes[index]!.outcome);
      }
    });

    it('the third claim for another device spends the token: its own device is then refused; after two it consumes it', async () => {
      const now = new Date(1_800_000_000_000);
      const { store, hashes: [burned, forgiven] } = await tokensFor(['sp-burn', 'sp-forgive'], now);
      const wrong = [];
      for (let i = 0; i < pairingWrongDeviceTriesMax; i += 1) wrong.push(await store.consume(burned!, { deviceId: `sp-guess-${i}`, now }));
      assert.deepEqual(wrong.map((o) => o.outcome), Array(pairingWrongDeviceTriesMax).fill('other-device'));
      assert.deepEqual(wrong.map(usedAtOf), [null, null, now.getTime()], 'the last wrong claim spent it');
      assert.equal((await store.consume(burned!, { deviceId: 'sp-burn', now })).outcome, 'already-used');
      assert.equal((await store.find(burned!))?.wrongDeviceTries, pairingWrongDeviceTriesMax);
      for (let i = 0; i < pairingWrongDeviceTriesMax - 1; i += 1) assert.equal((await store.consume(forgiven!, { deviceId: `sp-typo-${i}`, now })).outcome, 'other-device');
      assert.equal((await store.consume(forgiven!, { deviceId: 'sp-forgive', now })).outcome, 'consumed');
    });

    it('of many concurrent claims for other devices, no more than the bound are refused as other-device; the rest find it spent', async () => {
      const now = new Date(1_800_000_000_000);
      const { store, hashes: [hash] } = await tokensFor(['sp-flood'], now);
      const claims = Array.from({ length: 12 }, (_, i) => ({ deviceId: i === 5 ? 'sp-flood' : `sp-flood-guess-${i}`, now }));
      const outcomes = (await Promise.all(claims.map((claim) => store.consume(hash!, claim)))).map((o) => o.outcome);
      const wrong = outcomes.filter((o) => o === 'other-device').length;
      assert.ok(wrong <= pairingWrongDeviceTriesMax, JSON.stringify(outcomes));
      assert.ok(outcomes.filter((o) => o === 'consumed').length <= 1, JSON.stringify(outcomes));
      assert.equal(outcomes.filter((o) => o !== 'other-device' && o !== 'consumed' && o !== 'already-used').length, 0, JSON.stringify(outcomes));
      const record = await store.find(hash!);
      assert.notEqual(record?.usedAtMs, null, 'spent, one way or the other');
      assert.equal(record?.wrongDeviceTries, wrong, 'every other-device answer was counted');
      // Only wrong claims, all at once, on a fresh token: exactly the bound are told other-device.
      const { hashes: [only] } = await tokensFor(['sp-flood-2'], now);
      const flood = await Promise.all(Array.from({ length: 12 }, (_, i) => store.consume(only!, { deviceId: `sp-flood-2-guess-${i}`, now })));
      assert.equal(flood.filter((o) => o.outcome === 'other-device').length, pairingWrongDeviceTriesMax, JSON.stringify(flood.map((o) => o.outcome)));
      assert.equal(flood.filter((o) => o.outcome === 'already-used').length, 12 - pairingWrongDeviceTriesMax);
      assert.equal((await store.consume(only!, { deviceId: 'sp-flood-2', now })).outcome, 'already-used');
    });
  });
}
if (skipped !== undefined) describe('SQL pairing tokens on MySQL', () => it.skip(skipped, () => {}));
