import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createCrl, revokedSerialsOfCrl } from './crl.js';
import { toPem } from './pem.js';
import { revocationReasons, type RevocationEntry, type RevocationReason } from './revocation.js';
import { normalizeSerialHex, serialHexForEncoding } from './serial-number.js';
import { fixedNow, makeTestPki, type TestPki } from './test-fixtures.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

/**
 * The CRL is encoded directly (review h1, finding 2e): X509CrlGenerator's per-entry duplicate
 * check is quadratic. Ed25519 signatures are deterministic, so the whole CRL, signature included,
 * must equal what the library signs for the same values.
 */
const reasonCodes: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified, keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged, superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation, privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
};

/** The encoding crl.ts used before: the library's generator. */
async function libraryCrl(pki: TestPki, entries: readonly RevocationEntry[], crlNumber: bigint, now: Date, nextUpdateMs: number): Promise<Uint8Array> {
  const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const hex = crlNumber.toString(16).padStart(2, '0');
  const numberDer = Buffer.from(`02${(hex.length / 2 + (Number.parseInt(hex.slice(0, 2), 16) >= 0x80 ? 1 : 0)).toString(16).padStart(2, '0')}${Number.parseInt(hex.slice(0, 2), 16) >= 0x80 ? '00' : ''}${hex.length % 2 === 1 ? '0' + hex : hex}`, 'hex');
  const crl = await x509.X509CrlGenerator.create({
    issuer: pki.intermediate.certificate.subjectName, thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + nextUpdateMs),
    signingKey: pki.intermediate.privateKey, signingAlgorithm: ed25519Algorithm,
    extensions: [new x509.Extension('2.5.29.20', false, new Uint8Array(numberDer)), await x509.AuthorityKeyIdentifierExtension.create(pki.intermediate.certificate.publicKey)],
    entries: entries.map((entry) => ({ serialNumber: serialHexForEncoding(entry.serialHex), revocationDate: new Date(entry.revokedAtMs), reason: reasonCodes[entry.reason] })),
  });
  return new Uint8Array(crl.rawData);
}

describe('CRL encoding', () => {
  let pki: TestPki;
  before(async () => {
    pki = await makeTestPki();
  });

  it('is byte for byte the library\'s CRL for the same values: no entries, every reason but unspecified, high-bit and short serials, both time forms', async () => {
    const t = fixedNow.getTime();
    const serials = ['1', '7f', '80', 'ff00', '00abc', 'deadbeefcafebabe0123456789abcdef', '8' + 'f'.repeat(39)];
    const reasons = revocationReasons.filter((reason) => reason !== 'unspecified');
    const entries: RevocationEntry[] = serials.map((serial, i) => ({
      serialHex: normalizeSerialHex(serial), reason: reasons[i % reasons.length]!, revokedAtMs: t - 1_000 * i,
    }));
    entries.push({ serialHex: 'a1', reason: 'superseded', revokedAtMs: Date.UTC(2051, 0, 1) });
    for (const [list, crlNumber] of [[[], 1n], [entries, 200n], [entries.slice(0, 3), 0x7fn]] as const) {
      const ours = await createCrl({ issuer: pki.intermediate, entries: list, crlNumber, now: fixedNow, nextUpdateMs: 3_600_000 });
      const theirs = await libraryCrl(pki, list, crlNumber, fixedNow, 3_600_000);
      assert.equal(Buffer.from(ours.der).toString('hex'), Buffer.from(theirs).toString('hex'), `${list.length} entries`);
      const parsed = new x509.X509Crl(ours.pem);
      assert.equal(await parsed.verify({ publicKey: pki.intermediate.certificate.publicKey }), true);
      assert.equal(parsed.entries.length, list.length);
    }
  });

  it('writes an unspecified entry without extensions (the library wrote an empty list, which RFC 5280 does not allow)', async () => {
    const entry: RevocationEntry = { serialHex: 'abc', reason: 'unspecified', revokedAtMs: fixedNow.getTime() };
    const ours = await createCrl({ issuer: pki.intermediate, entries: [entry], crlNumber: 3n, now: fixedNow });
    const theirs = await libraryCrl(pki, [entry], 3n, fixedNow, 24 * 3_600_000);
    assert.equal(ours.der.length, theirs.length - 2, 'the two bytes of an empty SEQUENCE fewer');
    const parsed = new x509.X509Crl(ours.pem);
    assert.equal(await parsed.verify({ publicKey: pki.intermediate.certificate.publicKey }), true);
    assert.deepEqual([parsed.entries[0]!.serialNumber, parsed.entries[0]!.extensions.length], ['0abc', 0]);
  });

  it('signs a CRL of the store\'s 100,000 entries, and a gateway reads it back (asn1js refused more than about 1,200)', async () => {
    const entries: RevocationEntry[] = Array.from({ length: 100_000 }, (_, i) => ({ serialHex: (0x10000000 + i).toString(16), reason: 'superseded', revokedAtMs: fixedNow.getTime() - i }));
    entries.push({ serialHex: '8' + 'f'.repeat(39), reason: 'keyCompromise', revokedAtMs: fixedNow.getTime() });
    const crl = await createCrl({ issuer: pki.intermediate, entries, crlNumber: 9n, now: fixedNow });
    const serials = await revokedSerialsOfCrl({ pem: crl.pem, issuer: pki.intermediate.certificate });
    assert.equal(serials.size, entries.length);
    assert.ok(serials.has('10000000') && serials.has((0x10000000 + 99_999).toString(16)) && serials.has('8' + 'f'.repeat(39)));
  });

  it('reads the serials the library reads, and refuses a CRL of another issuer or with a changed byte', async () => {
    const entries: RevocationEntry[] = ['1', '80', 'abc'].map((serialHex) => ({ serialHex, reason: 'superseded', revokedAtMs: fixedNow.getTime() }));
    const crl = await createCrl({ issuer: pki.intermediate, entries, crlNumber: 4n, now: fixedNow });
    const library = new x509.X509Crl(crl.pem).entries.map((entry) => normalizeSerialHex(entry.serialNumber)).sort();
    assert.deepEqual([...await revokedSerialsOfCrl({ pem: crl.pem, issuer: pki.intermediate.certificate })].sort(), library);
    await assert.rejects(revokedSerialsOfCrl({ pem: crl.pem, issuer: pki.root.certificate }), { code: 'TRUST_CRL_INVALID' });
    const tampered = Uint8Array.from(crl.der);
    tampered[tampered.length - 70]! ^= 1;
    await assert.rejects(revokedSerialsOfCrl({ pem: toPem('X509 CRL', tampered), issuer: pki.intermediate.certificate }), { code: 'TRUST_CRL_INVALID' });
    await assert.rejects(revokedSerialsOfCrl({ pem: 'not a CRL', issuer: pki.intermediate.certificate }), { code: 'TRUST_CRL_INVALID' });
  });

  it('refuses a serial listed twice', async () => {
    const entry: RevocationEntry = { serialHex: 'abc', reason: 'superseded', revokedAtMs: fixedNow.getTime() };
    await assert.rejects(createCrl({ issuer: pki.intermediate, entries: [entry, { ...entry, serialHex: '0abc' }], crlNumber: 2n, now: fixedNow }), { code: 'TRUST_INVALID_ARGUMENT' });
  });
});
