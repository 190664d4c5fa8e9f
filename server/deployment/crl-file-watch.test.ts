import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { createCrl, generateCrl, readVerifiedCrl, revokedSerialsOfCrl } from '../../trust/crl.js';
import { MemoryRevocationStore } from '../../trust/revocation.js';
import { makeTestPki, type TestPki } from '../../trust/test-fixtures.js';
import { CrlFileWatch, crlRecordCharsMax } from './crl-file-watch.js';

describe('the gateway reads revocations from the CRL file', () => {
  let pki: TestPki;
  let stranger: TestPki;
  let dir: string;
  const now = new Date();

  async function crlPem(issuer: TestPki, serials: readonly string[]): Promise<string> {
    const store = new MemoryRevocationStore();
    for (const serial of serials) await store.revoke(serial, 'keyCompromise', now);
    return (await generateCrl({ issuer: issuer.intermediate, store, now })).pem;
  }

  before(async () => {
    pki = await makeTestPki(new Date(now.getTime() - 60_000));
    stranger = await makeTestPki(new Date(now.getTime() - 60_000));
    dir = await mkdtemp(join(tmpdir(), 'sdc-crl-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('lists the serials of a CRL our intermediate signed, normalized; refuses one signed by another CA', async () => {
    assert.deepEqual([...await revokedSerialsOfCrl({ pem: await crlPem(pki, ['00AB', 'cd']), issuer: pki.intermediate.certificate })].sort(), ['ab', 'cd']);
    await assert.rejects(revokedSerialsOfCrl({ pem: await crlPem(stranger, ['ab']), issuer: pki.intermediate.certificate }), (e) => SdcError.is(e, 'TRUST_CRL_INVALID'));
    await assert.rejects(revokedSerialsOfCrl({ pem: 'not a crl', issuer: pki.intermediate.certificate }), (e) => SdcError.is(e, 'TRUST_CRL_INVALID'));
  });

  it('reads the file at start and on each reload; a missing file is empty, a forged one keeps the last good set', async () => {
    const path = join(dir, 'crl.pem');
    const time = new VirtualTime();
    const watch = new CrlFileWatch({
      path, intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, clock: time, logger: pino({ level: 'silent' }), reloadIntervalMs: 1_000,
    });
    await watch.start();
    assert.deepEqual([...watch.serials()], [], 'no file yet');
    await writeFile(path, await crlPem(pki, ['a1']));
    await watch.reload();
    assert.deepEqual([...watch.serials()], ['a1']);
    await writeFile(path, await crlPem(stranger, ['b2']));
    await watch.reload();
    assert.deepEqual([...watch.serials()], ['a1'], 'a CRL another CA signed is not believed');
    watch.stop();
    assert.equal(time.pendingTimers, 0);
  });

  it('refuses a file larger than the largest CRL our CA signs without reading it (TRUST_CRL_INVALID), keeping the last good set', async () => {
    const path = join(dir, 'crl-huge.pem');
    const time = new VirtualTime();
    const lines: Array<{ code?: string; bytes?: number }> = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => { lines.push(JSON.parse(line) as { code?: string }); } });
    const watch = new CrlFileWatch({ path, intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, clock: time, logger });
    await writeFile(path, await crlPem(pki, ['c1']));
    await watch.reload();
    await writeFile(path, Buffer.alloc(crlRecordCharsMax + 1, 0x41));
    await watch.reload();
    assert.deepEqual([...watch.serials()], ['c1'], 'the last good set is kept');
    assert.deepEqual([...watch.refusals()], [['TRUST_CRL_INVALID', 1]]);
    assert.deepEqual(lines.map((line) => [line.code, line.bytes]), [['TRUST_CRL_INVALID', crlRecordCharsMax + 1]], 'refused by its size, before any parse');
  });

  it('refuses a CRL that names another issuer although our intermediate signed it', async () => {
    const renamed = await createCrl({ issuer: { ...pki.intermediate, certificate: pki.root.certificate }, entries: [], crlNumber: 1n, now });
    await assert.rejects(readVerifiedCrl({ pem: renamed.pem, issuer: pki.intermediate.certificate }), (e) => SdcError.is(e, 'TRUST_CRL_INVALID'));
    const signed = await createCrl({ issuer: pki.intermediate, entries: [], crlNumber: 7n, now, nextUpdateMs: 3_600_000 });
    const ours = await readVerifiedCrl({ pem: signed.pem, issuer: pki.intermediate.certificate });
    assert.deepEqual([ours.crlNumber, ours.thisUpdateMs, ours.nextUpdateMs], [7n, Math.floor(now.getTime() / 1000) * 1000, signed.nextUpdate.getTime()]);
  });

  it('keeps the revocations when an older CRL our CA signed is put back in the file (a lower CRL number), and takes the next newer one', async () => {
    const path = join(dir, 'crl-rollback.pem');
    const store = new MemoryRevocationStore();
    await store.revoke('a1', 'keyCompromise', now);
    const older = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
    await store.revoke('b2', 'keyCompromise', now);
    const newer = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
    await store.revoke('c3', 'keyCompromise', now);
    const newest = (await generateCrl({ issuer: pki.intermediate, store, now })).pem;
    const time = new VirtualTime();
    const watch = new CrlFileWatch({ path, intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, clock: time, logger: pino({ level: 'silent' }) });
    await writeFile(path, newer);
    await watch.start();
    assert.deepEqual([...watch.serials()].sort(), ['a1', 'b2']);
    await writeFile(path, older);
    await watch.reload();
    assert.deepEqual([...watch.serials()].sort(), ['a1', 'b2'], 'the older CRL does not take b2 back');
    await writeFile(path, newest);
    await watch.reload();
    assert.deepEqual([...watch.serials()].sort(), ['a1', 'b2', 'c3']);
    watch.stop();
  });
});
