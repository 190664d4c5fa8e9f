import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import { createCrl, generateCrl } from './crl.js';
import { JsonFileRevocationStore } from './revocation-file-store.js';
import { MemoryRevocationStore, RevocationTable, RevocationTableStore, type RevocationEntry, type RevocationStore } from './revocation.js';
import { fixedNow, makeCsrPem, makeTestPki, openssl, withTempDir, writeText, type TestPki } from './test-fixtures.js';
import { x509 } from './x509-provider.js';

/** One contract, every RevocationStore. */
function revocationStoreContract(name: string, open: (dir: string) => Promise<RevocationStore>): void {
  describe(`RevocationStore contract: ${name}`, () => {
    it('revokes once, keeps the first record, normalizes serials and lists in order', async () => {
      await withTempDir(async (dir) => {
        const store = await open(dir);
        assert.equal(await store.isRevoked('0abc'), false);
        assert.equal(await store.revoke('0ABC', 'keyCompromise', fixedNow), true);
        assert.equal(await store.revoke('abc', 'superseded', new Date(fixedNow.getTime() + 1)), false);
        assert.equal(await store.revoke('12', 'cessationOfOperation', fixedNow), true);
        assert.equal(await store.isRevoked('abc'), true);
        assert.equal(await store.isRevoked('000abc'), true);
        assert.deepEqual(await store.list(), [
          { serialHex: 'abc', reason: 'keyCompromise', revokedAtMs: fixedNow.getTime() },
          { serialHex: '12', reason: 'cessationOfOperation', revokedAtMs: fixedNow.getTime() },
        ]);
      });
    });

    it('hands out strictly increasing CRL numbers', async () => {
      await withTempDir(async (dir) => {
        const store = await open(dir);
        const numbers = [await store.nextCrlNumber(), await store.nextCrlNumber(), await store.nextCrlNumber()];
        assert.deepEqual(numbers, [1n, 2n, 3n]);
      });
    });

    it('refuses an unknown reason and a malformed serial', async () => {
      await withTempDir(async (dir) => {
        const store = await open(dir);
        await assert.rejects(store.revoke('ab', 'certificateHold' as never, fixedNow), (e) => SdcError.is(e, 'TRUST_REVOCATION_REASON_INVALID'));
        await assert.rejects(store.revoke('xyz', 'unspecified', fixedNow), (e) => SdcError.is(e, 'TRUST_INVALID_ARGUMENT'));
      });
    });
  });
}

revocationStoreContract('memory', async () => new MemoryRevocationStore());
revocationStoreContract('JSON file', (dir) => JsonFileRevocationStore.open(join(dir, 'revocations.json')));

/** A store whose next `persist` calls fail while `failing` is set; records every snapshot it made durable. */
class FlakyRevocationStore extends RevocationTableStore {
  failing = false;
  readonly snapshots: Array<{ serials: string[]; lastCrlNumber: bigint }> = [];

  constructor() {
    super(new RevocationTable());
  }

  protected async persist(entries: readonly RevocationEntry[], lastCrlNumber: bigint): Promise<void> {
    if (this.failing) throw new Error('disk full');
    this.snapshots.push({ serials: entries.map((e) => e.serialHex), lastCrlNumber });
  }
}

describe('RevocationTableStore', () => {
  it('changes nothing when persisting fails, and never hands out a CRL number it could not persist', async () => {
    const store = new FlakyRevocationStore();
    assert.equal(await store.revoke('a1', 'keyCompromise', fixedNow), true);
    store.failing = true;
    await assert.rejects(store.revoke('b2', 'keyCompromise', fixedNow), /disk full/);
    await assert.rejects(store.nextCrlNumber(), /disk full/);
    assert.equal(await store.isRevoked('b2'), false);
    assert.deepEqual((await store.list()).map((e) => e.serialHex), ['a1']);
    store.failing = false;
    assert.equal(await store.nextCrlNumber(), 1n);
    assert.equal(await store.revoke('b2', 'superseded', fixedNow), true);
    assert.deepEqual(store.snapshots, [
      { serials: ['a1'], lastCrlNumber: 0n }, { serials: ['a1'], lastCrlNumber: 1n }, { serials: ['a1', 'b2'], lastCrlNumber: 1n },
    ]);
  });

  it('hands concurrent changes to persist one at a time, in call order', async () => {
    const store = new FlakyRevocationStore();
    const results = await Promise.all([store.revoke('1', 'unspecified', fixedNow), store.nextCrlNumber(), store.revoke('2', 'unspecified', fixedNow), store.nextCrlNumber()]);
    assert.deepEqual(results, [true, 1n, true, 2n]);
    assert.deepEqual(store.snapshots.map((s) => [s.serials.join(','), s.lastCrlNumber]), [['1', 0n], ['1', 1n], ['1,2', 1n], ['1,2', 2n]]);
  });
});

describe('JsonFileRevocationStore', () => {
  it('persists entries and the CRL number across reopen, in a 0600 file', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'revocations.json');
      const first = await JsonFileRevocationStore.open(path);
      await first.revoke('ff01', 'superseded', fixedNow);
      assert.equal(await first.nextCrlNumber(), 1n);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      const second = await JsonFileRevocationStore.open(path);
      assert.equal(await second.isRevoked('ff01'), true);
      assert.equal(await second.nextCrlNumber(), 2n);
    });
  });

  it('serializes concurrent writes so none is lost', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'revocations.json');
      const store = await JsonFileRevocationStore.open(path);
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.revoke((i + 1).toString(16), 'unspecified', fixedNow)));
      const reopened = await JsonFileRevocationStore.open(path);
      assert.equal((await reopened.list()).length, 20);
    });
  });

  it('refuses a corrupt file', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'revocations.json');
      await writeFile(path, '{"version":1,"lastCrlNumber":"x","entries":[]}');
      await assert.rejects(JsonFileRevocationStore.open(path), (e) => SdcError.is(e, 'TRUST_STORE_CORRUPT'));
      await writeFile(path, 'nope');
      await assert.rejects(JsonFileRevocationStore.open(path), (e) => SdcError.is(e, 'TRUST_STORE_CORRUPT'));
    });
  });

  it('refuses revocations beyond its capacity', async () => {
    await withTempDir(async (dir) => {
      const store = await JsonFileRevocationStore.open(join(dir, 'r.json'), { entriesMax: 2 });
      await store.revoke('1', 'unspecified', fixedNow);
      await store.revoke('2', 'unspecified', fixedNow);
      await assert.rejects(store.revoke('3', 'unspecified', fixedNow), (e) => SdcError.is(e, 'TRUST_REVOCATION_CAPACITY'));
    });
  });
});

describe('CRL', () => {
  let pki: TestPki;
  before(async () => { pki = await makeTestPki(); });

  it('is a v2 CRL signed by the intermediate, with number, reasons and nextUpdate, that OpenSSL parses and enforces', async () => {
    const revoked = await pki.issuer.issueDeviceCertificate({ csrPem: await makeCsrPem('dev-bad'), deviceId: 'dev-bad', now: fixedNow });
    const good = await pki.issuer.issueDeviceCertificate({ csrPem: await makeCsrPem('dev-good'), deviceId: 'dev-good', now: fixedNow });
    await pki.revocations.revoke(revoked.serialHex, 'keyCompromise', fixedNow);
    const first = await generateCrl({ issuer: pki.intermediate, store: pki.revocations, now: fixedNow });
    const second = await generateCrl({ issuer: pki.intermediate, store: pki.revocations, now: fixedNow });
    assert.ok(second.crlNumber > first.crlNumber);
    assert.match(second.pem, /^-----BEGIN X509 CRL-----\n/);
    assert.equal(second.nextUpdate.getTime() - second.thisUpdate.getTime(), 24 * 60 * 60 * 1000);

    const parsed = new x509.X509Crl(second.pem);
    assert.equal(await parsed.verify({ publicKey: pki.intermediate.certificate.publicKey }), true);
    assert.equal(parsed.findRevoked(revoked.serialHex)?.reason, x509.X509CrlReason.keyCompromise);
    assert.equal(parsed.findRevoked(good.serialHex), null);
    // The times returned are the encoded ones (whole seconds), also for a time with milliseconds.
    const withMs = await generateCrl({ issuer: pki.intermediate, store: pki.revocations, now: new Date(fixedNow.getTime() + 1_499) });
    const withMsParsed = new x509.X509Crl(withMs.pem);
    assert.equal(withMs.thisUpdate.getTime(), withMsParsed.thisUpdate.getTime());
    assert.equal(withMs.nextUpdate.getTime(), withMsParsed.nextUpdate!.getTime());
    assert.equal(withMs.thisUpdate.getTime(), fixedNow.getTime() + 1_000);

    await withTempDir(async (dir) => {
      const [intermediate, root] = pki.issuer.chainPems();
      await writeText(dir, 'root.pem', root);
      await writeText(dir, 'int.pem', intermediate);
      await writeText(dir, 'crl.pem', second.pem);
      await writeText(dir, 'bad.pem', revoked.certificatePem);
      await writeText(dir, 'good.pem', good.certificatePem);
      const text = openssl(['crl', '-in', 'crl.pem', '-noout', '-text'], dir);
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /Version 2/);
      assert.match(text.stdout, new RegExp(`X509v3 CRL Number: \\n\\s+${second.crlNumber}`));
      assert.match(text.stdout, /Key Compromise/);
      const at = String(fixedNow.getTime() / 1000 + 60);
      const verifyArgs = (cert: string): string[] => ['verify', '-attime', at, '-crl_check', '-CRLfile', 'crl.pem', '-CAfile', 'root.pem', '-untrusted', 'int.pem', cert];
      const bad = openssl(verifyArgs('bad.pem'), dir);
      assert.notEqual(bad.status, 0);
      assert.match(bad.stdout + bad.stderr, /certificate revoked/);
      const ok = openssl(verifyArgs('good.pem'), dir);
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    });
  });

  it('refuses a CRL number outside 1..2^159-1', async () => {
    await assert.rejects(createCrl({ issuer: pki.intermediate, entries: [], crlNumber: 0n, now: fixedNow }), (e) => SdcError.is(e, 'TRUST_INVALID_ARGUMENT'));
    const big = await createCrl({ issuer: pki.intermediate, entries: [], crlNumber: (1n << 159n) - 1n, now: fixedNow });
    assert.ok(big.der.length > 0);
  });
});

