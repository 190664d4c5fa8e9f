// Hardening 10.4 (issue 12): every private key a service loads at start is 0600. A key file that
// group or others may read is refused with TRUST_KEY_FILE_PERMISSIONS naming the file (as ssh
// does), before anything listens: the command and gateway signing keys and the TLS server key
// (the intermediate CA key and the JWT key ring were already checked).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SdcError } from '../../core/errors/index.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { pkiPaths } from '../../trust/pki-directory.js';
import { deploymentPaths, initDeployment, loadDeployment } from './materials.js';

describe('service keys are 0600, checked at start', { skip: process.platform === 'win32' ? 'POSIX modes' : false }, () => {
  it('refuses a group- or world-readable key file with TRUST_KEY_FILE_PERMISSIONS naming it, and loads again once it is 0600', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-key-modes-'));
    try {
      await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
      const paths = deploymentPaths(dataDir);
      const keyFiles = [paths.commandKeyPath, paths.gatewayKeyPath, paths.serverKeyPath, pkiPaths(dataDir).intermediateKeyPath];
      for (const path of keyFiles) {
        for (const mode of [0o640, 0o604, 0o644]) {
          await chmod(path, mode);
          await assert.rejects(loadDeployment({ dataDir, clock: systemClock, random: systemRandom }), (error: unknown) => {
            assert.ok(SdcError.is(error, 'TRUST_KEY_FILE_PERMISSIONS'), `${path} ${mode.toString(8)}: ${String(error)}`);
            assert.ok(error.message.includes(path), error.message);
            assert.match(error.message, new RegExp(`mode ${mode.toString(8)}`));
            return true;
          });
        }
        await chmod(path, 0o600);
      }
      const loaded = await loadDeployment({ dataDir, clock: systemClock, random: systemRandom });
      assert.ok(loaded.commandSigner.kid.startsWith('cp:'));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
