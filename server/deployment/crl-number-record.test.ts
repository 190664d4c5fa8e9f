// The highest CRL any gateway took, kept signed in the shared key/value store (decision 0021): a
// restarted or new gateway (a new CrlFileWatch on the same record) holds it and refuses an older
// CRL our CA really signed, put back in the file, as the running one does; a record that is not a
// CRL of our intermediate is ignored and written over (review h9). On the memory store,
// ioredis-mock and, with REDIS_URL, real Redis.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { kvKeys } from '../bus-contract/streams.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { deleteKeysWithPrefix, testKeyPrefix } from '../stores/redis-test-keys.js';
import { createCrl, generateCrl } from '../../trust/crl.js';
import { MemoryRevocationStore, revocationEntriesMaxDefault } from '../../trust/revocation.js';
import { makeTestPki, type TestPki } from '../../trust/test-fixtures.js';
import { crlFetchBytesMax } from './crl-fetch.js';
import { CrlFileWatch, crlRecordCharsMax, crlRecordKeysOf } from './crl-file-watch.js';
import { CrlRecordStore, crlRecordHead, crlRecordHeadCharsMax, crlRecordPartCharsMax, crlRecordPartsMax } from './crl-record.js';

const recordKeys = crlRecordKeysOf(kvKeys.gatewayCrl);

/** The PEM the record's head names (parts joined, digest checked); null without a head. */
async function recordedText(kv: KeyValueStore): Promise<string | null> {
  const store = new CrlRecordStore(kv, recordKeys);
  const head = await store.readHead();
  if (head.state !== 'head') return null;
  const body = await store.readBody(head.head);
  return body.state === 'text' ? body.text : null;
}

/** What a store writer (or a gateway) puts in the record: `text` in parts and a head naming it, numbered `crlNumber`. */
async function plantRecord(kv: KeyValueStore, text: string, crlNumber: bigint): Promise<void> {
  const store = new CrlRecordStore(kv, recordKeys);
  const head = crlRecordHead(text, crlNumber);
  await store.writeParts(text, head);
  await kv.set(recordKeys.head, head.text);
}

/** Removes the record's head and the parts it names. */
async function removeRecord(kv: KeyValueStore): Promise<void> {
  const store = new CrlRecordStore(kv, recordKeys);
  const head = await store.readHead().catch(() => ({ state: 'absent' as const }));
  if (head.state === 'head') await store.removeParts(head.head);
  await kv.del(recordKeys.head);
  await kv.del(kvKeys.gatewayCrl);
}

/** `kv` as seen through the port, noting the longest string that crossed it either way (arguments, answers, getBounded's value). */
function measuredKv(kv: KeyValueStore): { kv: KeyValueStore; longestChars(): number; reset(): void } {
  let longest = 0;
  const note = (value: unknown): void => {
    if (typeof value === 'string') longest = Math.max(longest, value.length);
    else if (value !== null && typeof value === 'object' && 'value' in value) note((value as { value: unknown }).value);
  };
  const proxy = new Proxy(kv, {
    get(target, property) {
      const member: unknown = Reflect.get(target, property, target);
      if (typeof member !== 'function') return member;
      return (...args: unknown[]) => {
        args.forEach(note);
        const result: unknown = member.apply(target, args);
        return result instanceof Promise ? result.then((answer: unknown) => { note(answer); return answer; }) : result;
      };
    },
  });
  return { kv: proxy, longestChars: () => longest, reset: () => { longest = 0; } };
}

const redisUrl = process.env['REDIS_URL'];

// Stores that accept values above the record's bound, so a test can put there what a store writer
// configured otherwise (or writing Redis directly) could; the watch's bound is its own.
const valueBytesMax = 4 * crlRecordCharsMax;
const variants: Array<{ name: string; open(): KeyValueStore }> = [
  { name: 'the memory store', open: () => new MemoryKeyValueStore({ clock: new VirtualTime(), keyPrefix: `crl-record-${randomBytes(4).toString('hex')}:`, valueBytesMax }) },
  { name: 'ioredis-mock', open: () => createEmbeddedKeyValueStore({ keyPrefix: `crl-record-${randomBytes(4).toString('hex')}:`, valueBytesMax }) },
];
const redisPrefix = testKeyPrefix('crl-number-record');
if (redisUrl !== undefined && redisUrl !== '') {
  variants.push({ name: 'Redis', open: () => createRedisKeyValueStore({ url: redisUrl, keyPrefix: redisPrefix, valueBytesMax }) });
  after(() => deleteKeysWithPrefix(redisUrl, redisPrefix));
}
// Without REDIS_URL the Redis variant is not run; the memory store and ioredis-mock take the same steps.

for (const variant of variants) {
  describe(`the highest CRL taken outlives a gateway restart, on ${variant.name}`, () => {
    let pki: TestPki;
    let dir: string;
    const now = new Date();
    before(async () => {
      pki = await makeTestPki(new Date(now.getTime() - 60_000));
      dir = await mkdtemp(join(tmpdir(), 'sdc-crl-record-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    /** A watch on the deployment's record, its error lines kept. */
    function watchOn(kv: KeyValueStore, path: string, time: VirtualTime) {
      const lines: Array<{ code?: string; state?: string; reason?: string; msg: string }> = [];
      const logger = pino({ level: 'error' }, { write: (line: string) => { lines.push(JSON.parse(line) as { code?: string; msg: string }); } });
      const watch = new CrlFileWatch({
        path, intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, clock: time, logger, record: { kv, key: kvKeys.gatewayCrl },
      });
      return { watch, lines };
    }

    it('a restarted gateway given an older CRL file holds the record\'s CRL (the file not counted as rolled back: it is only behind the record), takes the next newer one, and refuses a file older than that (TRUST_CRL_ROLLED_BACK)', async () => {
      const kv = variant.open();
      const path = join(dir, 'crl-restart.pem');
      const store = new MemoryRevocationStore();
      await store.revoke('a1', 'keyCompromise', now);
      const older = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      await store.revoke('b2', 'keyCompromise', now);
      const newer = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      await store.revoke('c3', 'keyCompromise', now);
      const newest = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      const time = new VirtualTime(now.getTime());
      try {
        await writeFile(path, newer);
        const first = watchOn(kv, path, time).watch;
        await first.start();
        assert.equal(await recordedText(kv), newer, 'the signed CRL taken is recorded');
        first.stop();

        await writeFile(path, older);
        const { watch: restarted, lines } = watchOn(kv, path, time);
        await restarted.start();
        assert.equal(restarted.freshness().state, 'fresh', 'the record\'s CRL, verified, is held: never none while a verified record exists');
        assert.equal(restarted.freshness().crlNumber, 2n);
        assert.deepEqual([...restarted.refusals()], [], 'a file behind the record is not one this gateway rolled back from (review h13, finding 2)');
        assert.deepEqual([...restarted.serials()].sort(), ['a1', 'b2']);
        assert.equal(await recordedText(kv), newer, 'the record is never lowered');

        await writeFile(path, newest);
        await restarted.reload();
        assert.equal(restarted.freshness().crlNumber, 3n);
        assert.deepEqual([...restarted.serials()].sort(), ['a1', 'b2', 'c3']);
        assert.equal(await recordedText(kv), newest);

        // Older than what this gateway took from its own file: a rollback, refused at error and counted.
        await writeFile(path, older);
        await restarted.reload();
        assert.deepEqual([...restarted.refusals()], [['TRUST_CRL_ROLLED_BACK', 1]]);
        assert.deepEqual(lines.map((line) => line.code), ['TRUST_CRL_ROLLED_BACK']);
        assert.equal(restarted.freshness().crlNumber, 3n);
        await writeFile(path, newest);

        // A store that lost the record (a wipe) has it written again at the next reload.
        await removeRecord(kv);
        await restarted.reload();
        assert.equal(await recordedText(kv), newest);
        restarted.stop();
      } finally {
        await removeRecord(kv);
        await kv.close();
      }
    });

    for (const form of ['head and parts', 'the single key of builds before 2026-12-06'] as const) {
      it(`a new gateway with no CRL of its own (a new pod) starts with the record's CRL (${form}): fresh, its revocations held`, async () => {
        const kv = variant.open();
        const store = new MemoryRevocationStore();
        await store.revoke('d4', 'keyCompromise', now);
        const signed = await generateCrl({ issuer: pki.intermediate, store, now });
        const time = new VirtualTime(now.getTime());
        try {
          if (form === 'head and parts') await plantRecord(kv, signed.pem, signed.crlNumber);
          else await kv.set(kvKeys.gatewayCrl, signed.pem);
          const { watch, lines } = watchOn(kv, join(dir, 'no-such-file.pem'), time);
          await watch.start();
          assert.deepEqual(watch.freshness(), { state: 'fresh', crlNumber: signed.crlNumber, nextUpdateMs: signed.nextUpdate.getTime() });
          assert.deepEqual([...watch.serials()], ['d4']);
          assert.deepEqual(lines, [], 'nothing to report');
          assert.equal(await recordedText(kv), signed.pem, 'recorded as head and parts');
          watch.stop();
        } finally {
          await removeRecord(kv);
          await kv.close();
        }
      });
    }

    it('a gateway whose file copy is behind another gateway\'s record holds the record\'s CRL without an alarm; a file older than its own earlier one is still TRUST_CRL_ROLLED_BACK (review h13, finding 2)', async () => {
      const kv = variant.open();
      const pathA = join(dir, 'crl-behind-a.pem');
      const pathB = join(dir, 'crl-behind-b.pem');
      const store = new MemoryRevocationStore();
      await store.revoke('a71', 'keyCompromise', now);
      const first = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      await store.revoke('a72', 'keyCompromise', now);
      const second = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      await store.revoke('a73', 'keyCompromise', now);
      const third = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      const time = new VirtualTime(now.getTime());
      try {
        await writeFile(pathA, second);
        const a = watchOn(kv, pathA, time);
        await a.watch.start();
        await writeFile(pathB, third);
        const b = watchOn(kv, pathB, time).watch;
        await b.start();
        assert.equal(await recordedText(kv), third, 'gateway B recorded the newer CRL');
        b.stop();
        for (let reload = 0; reload < 3; reload += 1) {
          await a.watch.reload();
          assert.equal(a.watch.freshness().crlNumber, 3n, 'A holds the record\'s CRL');
          assert.deepEqual([...a.watch.serials()].sort(), ['a71', 'a72', 'a73']);
        }
        assert.deepEqual([...a.watch.refusals()], [], 'a copy behind the record is no refusal');
        assert.equal(a.lines.length, 0, 'nor an error line');
        // Below the CRL A itself took from its file: rolled back, whatever the record holds.
        await writeFile(pathA, first);
        await a.watch.reload();
        assert.deepEqual([...a.watch.refusals()], [['TRUST_CRL_ROLLED_BACK', 1]]);
        assert.deepEqual(a.lines.map((line) => line.code), ['TRUST_CRL_ROLLED_BACK']);
        assert.equal(a.watch.freshness().crlNumber, 3n);
        a.watch.stop();
      } finally {
        await removeRecord(kv);
        await kv.close();
      }
    });

    for (const where of ['head', 'part'] as const) {
      it(`a record whose ${where} is above its bound is neither read nor sent back: counted and logged TRUST_CRL_RECORD_INVALID, replaced with the CRL held (review h13, finding 1)`, async () => {
        const kv = variant.open();
        const measured = measuredKv(kv);
        const path = join(dir, `crl-huge-record-${where}.pem`);
        const store = new MemoryRevocationStore();
        await store.revoke('d81', 'keyCompromise', now);
        const current = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
        const huge = 'A'.repeat(2 * crlRecordCharsMax);
        const plant = async (): Promise<void> => {
          if (where === 'head') {
            await kv.set(recordKeys.head, huge);
            return;
          }
          // A head of the right form, claiming a high number, naming one part far above the part bound.
          const head = crlRecordHead(huge, 99n);
          await kv.set(recordKeys.part(head.sha256, 0), huge);
          await kv.set(recordKeys.head, head.text.replace(/ [0-9]+$/, ' 1'));
        };
        const time = new VirtualTime(now.getTime());
        try {
          await writeFile(path, current);
          const { watch, lines } = watchOn(measured.kv, path, time);
          await watch.start();
          await plant();
          await watch.reload();
          assert.equal(watch.freshness().crlNumber, 1n, 'the CRL held is kept');
          assert.equal(watch.refusals().get('TRUST_CRL_RECORD_INVALID'), 1);
          assert.deepEqual(lines.map((line) => [line.code, line.reason]), [['TRUST_CRL_RECORD_INVALID', 'too-large']]);
          assert.equal(await recordedText(kv), current, 'replaced with the CRL held');
          // A restarted gateway reading the record first does the same.
          await plant();
          const restarted = watchOn(measured.kv, path, time);
          await restarted.watch.start();
          assert.equal(restarted.watch.freshness().crlNumber, 1n);
          assert.equal(restarted.watch.refusals().get('TRUST_CRL_RECORD_INVALID'), 1);
          assert.equal(await recordedText(kv), current);
          const bound = where === 'head' ? crlRecordHeadCharsMax : crlRecordPartCharsMax;
          assert.ok(measured.longestChars() <= Math.max(bound, current.length), `no string above the bound crossed the port: ${measured.longestChars()} characters`);
          if (where === 'part') assert.equal(await kv.get(recordKeys.part(crlRecordHead(huge, 99n).sha256, 0)), null, 'the parts of the head replaced are removed');
          restarted.watch.stop();
          watch.stop();
        } finally {
          await removeRecord(kv);
          await kv.del(recordKeys.part(crlRecordHead(huge, 99n).sha256, 0));
          await kv.close();
        }
      });
    }

    it('a record a store writer put there (a huge number, text, a head whose number or digest lies, another CA\'s CRL) sets no floor and drops nothing held: ignored, logged TRUST_CRL_RECORD_INVALID, counted, written over', async () => {
      const kv = variant.open();
      const path = join(dir, 'crl-poison.pem');
      const store = new MemoryRevocationStore();
      const time = new VirtualTime(now.getTime());
      const otherPki = await makeTestPki(new Date(now.getTime() - 60_000));
      const foreign = (await generateCrl({ issuer: otherPki.intermediate, store: new MemoryRevocationStore(), now })).pem;
      const highest = 10n ** 48n;
      let current = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
      const plants: Array<() => Promise<void>> = [
        async () => { await kv.set(recordKeys.head, '9'.repeat(49)); },
        async () => { await kv.set(recordKeys.head, 'not a CRL'); },
        // Our CA's CRL under a head claiming a higher number than it has.
        () => plantRecord(kv, current, highest),
        () => plantRecord(kv, foreign, highest),
        // A head naming the digest of one text, its part holding another.
        async () => {
          const head = crlRecordHead(foreign, highest);
          await kv.set(recordKeys.part(head.sha256, 0), current);
          await kv.set(recordKeys.head, head.text);
        },
      ];
      try {
        await writeFile(path, current);
        const { watch, lines } = watchOn(kv, path, time);
        await watch.start();
        let invalid = 0;
        for (const [index, plant] of plants.entries()) {
          await plant();
          // The CRL held is kept through a reload that reads the record...
          await watch.reload();
          invalid += 1;
          assert.equal(watch.freshness().state, 'fresh', `record ${index}: the CRL held is kept`);
          assert.equal(watch.refusals().get('TRUST_CRL_RECORD_INVALID'), invalid, `record ${index}: counted`);
          assert.equal(lines.filter((line) => line.code === 'TRUST_CRL_RECORD_INVALID').length, invalid, `record ${index}: logged at error with its code`);
          assert.equal(await recordedText(kv), current, `record ${index}: written over with the CRL held`);
          // ...and a newer CRL our CA signs is taken, also by a restarted gateway reading the record first.
          await plant();
          await store.revoke(`e${index}`, 'keyCompromise', now);
          const next = await generateCrl({ issuer: pki.intermediate, store, now });
          current = next.pem;
          await writeFile(path, current);
          const restarted = watchOn(kv, path, time).watch;
          await restarted.start();
          assert.equal(restarted.freshness().crlNumber, next.crlNumber, `record ${index}: a restarted gateway takes the newer CRL`);
          assert.ok(restarted.serials().has(`e${index}`));
          restarted.stop();
          await watch.reload();
          assert.deepEqual([watch.freshness().state, watch.freshness().crlNumber], ['fresh', next.crlNumber], `record ${index}: the running gateway takes the newer CRL`);
          assert.equal(await recordedText(kv), current);
        }
        assert.equal(watch.refusals().get('TRUST_CRL_ROLLED_BACK'), undefined);
        watch.stop();
      } finally {
        await removeRecord(kv);
        await kv.close();
      }
    });

    it('a CRL of the revocation store\'s maximum entries (100,000, the largest serials) round-trips through the record: a restarted gateway with no file holds it, and its head alone is read while it does not change', async () => {
      const kv = variant.open();
      const measured = measuredKv(kv);
      const path = join(dir, 'crl-largest.pem');
      const entries = Array.from({ length: revocationEntriesMaxDefault }, (_, index) => ({
        // 20 octets with the top bit set: the longest DER INTEGER a serial takes (21 octets).
        // Revoked after 2049: a GeneralizedTime, two digits longer than a UTCTime.
        serialHex: `f${index.toString(16).padStart(39, '0')}`, reason: 'superseded' as const, revokedAtMs: Date.UTC(2060, 0, 1),
      }));
      const largest = await createCrl({ issuer: pki.intermediate, entries, crlNumber: 7n, now });
      assert.ok(largest.pem.length > (crlRecordPartsMax - 1) * crlRecordPartCharsMax, `${largest.pem.length} characters: the most parts the record allows`);
      assert.ok(largest.pem.length <= crlRecordCharsMax, `${largest.pem.length} characters within the bound ${crlRecordCharsMax}`);
      assert.ok(crlRecordCharsMax <= crlFetchBytesMax, `the bound ${crlRecordCharsMax} within the fetch's ${crlFetchBytesMax} bytes: a gateway fetches the largest CRL too`);
      const time = new VirtualTime(now.getTime());
      try {
        await writeFile(path, largest.pem);
        const first = watchOn(kv, path, time);
        await first.watch.start();
        first.watch.stop();
        assert.deepEqual(first.lines, [], 'nothing to report');
        assert.equal(await recordedText(kv), largest.pem, 'recorded whole');

        const restarted = watchOn(measured.kv, join(dir, 'no-such-file.pem'), time);
        await restarted.watch.start();
        assert.equal(restarted.watch.freshness().crlNumber, 7n, 'the record\'s CRL is held');
        assert.equal(restarted.watch.serials().size, revocationEntriesMaxDefault);
        assert.ok(measured.longestChars() <= crlRecordPartCharsMax, `parts of at most ${crlRecordPartCharsMax} characters crossed the port: ${measured.longestChars()}`);
        measured.reset();
        await restarted.watch.reload();
        assert.ok(measured.longestChars() <= crlRecordHeadCharsMax, `a reload of an unchanged record reads its head only: ${measured.longestChars()} characters crossed`);
        restarted.watch.stop();
        assert.deepEqual(restarted.lines, []);
      } finally {
        await removeRecord(kv);
        await kv.close();
      }
    });
  });
}

it('a gateway that holds no CRL says so at error with its code at each reload (state none is as loud as stale)', async () => {
  const lines: Array<{ code?: string; state?: string }> = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => { lines.push(JSON.parse(line) as { code?: string }); } });
  const time = new VirtualTime();
  const pki = await makeTestPki(new Date(Date.now() - 60_000));
  const watch = new CrlFileWatch({ path: join(tmpdir(), `sdc-no-crl-${randomBytes(4).toString('hex')}.pem`), intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, clock: time, logger });
  await watch.reload();
  await watch.reload();
  assert.equal(watch.freshness().state, 'none');
  assert.deepEqual(lines.map((line) => [line.code, line.state]), [['TRUST_CRL_STALE', 'none'], ['TRUST_CRL_STALE', 'none']]);
});
