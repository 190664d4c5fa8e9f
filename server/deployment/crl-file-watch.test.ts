import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { generateCrl, revokedSerialsOfCrl } from '../../trust/crl.js';
import { MemoryRevocationStore } from '../../trust/revocation.js';
import { makeTestPki, type TestPki } from '../../trust/test-fixtures.js';
import { CrlFileWatch } from './crl-file-watch.js';

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
      path, intermediateCaPem: pki.intermediate.certificate.toString('pem'), scheduler: time, logger: pino({ level: 'silent' }), reloadIntervalMs: 1_000,
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
});
