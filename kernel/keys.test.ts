// Kernel key files (kernel/keys.ts): seeds are the owner's only whatever was on disk before, and
// each file is replaced whole (no temporary file left behind, every key exactly 32 bytes).
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { chmodSync, fstatSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { SeededRandom } from '../core/random/prng.js';
import { kernelKeyPaths, provisionKernelKeys, readKeyFile } from './keys.js';

const ed25519 = createNodeEd25519Provider();
const modeOf = (path: string) => statSync(path).mode & 0o777;

function inTempDir(body: (dir: string) => void): () => void {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdc-keys-'));
    try {
      body(join(dir, 'kernel'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('a seed left world-readable by a partial earlier run is rewritten 0600, with all four keys whole', inTempDir((dir) => {
  const paths = kernelKeyPaths(dir);
  provisionKernelKeys({ dir, ed25519, random: new SeededRandom(1) });
  // A partial run: one public key missing, a seed readable by everyone (and short, as a torn write leaves it).
  rmSync(paths.servicePublicKeyPath);
  writeFileSync(paths.agentSeedPath, new Uint8Array(7));
  chmodSync(paths.agentSeedPath, 0o644);
  provisionKernelKeys({ dir, ed25519, random: new SeededRandom(2) });
  assert.equal(modeOf(paths.agentSeedPath), 0o600);
  assert.equal(modeOf(paths.serviceSeedPath), 0o600);
  for (const path of Object.values(paths)) assert.equal(readKeyFile(path).length, 32, path);
  assert.deepEqual(readdirSync(dir).sort(), ['agent.pub', 'agent.seed', 'service.pub', 'service.seed'], 'no temporary file left');
}));

test('existing keys are kept, and a seed or directory group or others can read is made the owner\'s only', inTempDir((dir) => {
  const paths = kernelKeyPaths(dir);
  provisionKernelKeys({ dir, ed25519, random: new SeededRandom(3) });
  const seed = readKeyFile(paths.agentSeedPath);
  chmodSync(paths.agentSeedPath, 0o644);
  chmodSync(paths.serviceSeedPath, 0o640);
  chmodSync(dir, 0o755);
  provisionKernelKeys({ dir, ed25519, random: new SeededRandom(4) });
  assert.deepEqual(readKeyFile(paths.agentSeedPath), seed, 'the key is kept');
  assert.equal(modeOf(paths.agentSeedPath), 0o600);
  assert.equal(modeOf(paths.serviceSeedPath), 0o600);
  assert.equal(modeOf(dir), 0o700);
  assert.equal(modeOf(paths.agentPublicKeyPath) & 0o600, 0o600);
}));

test('a directory that cannot be fsync\'d (as on Windows) does not stop provisioning: the keys are written whole', inTempDir((dir) => {
  // Node's own fsync on a directory fails on Windows (EPERM) and some filesystems; files still fsync.
  const realFsync = fs.fsyncSync;
  let directoryFsyncs = 0;
  mock.method(fs, 'fsyncSync', (fd: number) => {
    if (fstatSync(fd).isDirectory()) {
      directoryFsyncs += 1;
      throw Object.assign(new Error('EPERM: operation not permitted, fsync'), { code: 'EPERM' });
    }
    realFsync(fd);
  });
  syncBuiltinESMExports(); // the named `fsyncSync` imports see the mock too
  try {
    const paths = provisionKernelKeys({ dir, ed25519, random: new SeededRandom(5) });
    assert.equal(directoryFsyncs, 4, 'each rename tried to sync the directory');
    for (const path of Object.values(paths)) assert.equal(readKeyFile(path).length, 32, path);
    assert.equal(modeOf(paths.agentSeedPath), 0o600);
    assert.deepEqual(readdirSync(dir).sort(), ['agent.pub', 'agent.seed', 'service.pub', 'service.seed'], 'no temporary file left');
  } finally {
    mock.restoreAll();
    syncBuiltinESMExports();
  }
}));
