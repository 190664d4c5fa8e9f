import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemRandom, systemScheduler } from '../../runtime/system.js';
import { createControlPlane } from '../control-plane/control-plane.js';
import { closeHarness, ManualClock, type Harness, type KvFactory, type SqlTarget } from '../control-plane/test-support.js';
import { initDeployment } from '../materials/materials.js';
import { MemoryStreamBus } from '../stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore } from '../stores/kv/redis-key-value-store.js';
import { testStoreTag } from '../stores/test-store-namespace.js';
import type { OtaBlobOptions } from './control-plane-ota.js';
import type { OtaServices } from './ota-service.js';
import type { RolloutPolicyPort } from './rollout-policy.js';
import type { ControlPlane } from '../control-plane/control-plane.js';
import type { Role } from '../control-plane/users.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from './repository-init.js';

/**
 * A control plane with an image repository, as `sdc ota init` then `sdc serve` make one: the
 * repository files are written into the data directory before the control plane is created
 * (`createRepository`, by default keys generated here, the offline ones kept for the test as
 * release signers keep theirs), so the control plane opens and serves it itself and signs the
 * first snapshot and timestamp. Like makeHarness otherwise (a ManualClock, embedded bus; the
 * embedded kv unless `kv` gives the store pair's, so the MySQL + Redis pair runs the OTA kv
 * records, such as the artifact URL's expiry, on real Redis).
 */
export async function makeOtaHarness(target: SqlTarget, options: {
  createRepository?: (dataDir: string, nowMs: number) => Promise<void>; artifactBytesMax?: number; otaBlobs?: OtaBlobOptions; kv?: KvFactory | undefined;
} = {}): Promise<Harness & { ota: OtaServices; keys: RepositoryKeys | undefined }> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-ota-'));
  const clock = new ManualClock();
  const materials = await initDeployment({ dataDir: dir, clock, random: systemRandom });
  let keys: RepositoryKeys | undefined;
  if (options.createRepository === undefined) {
    keys = generateRepositoryKeys();
    await writeRepositoryFiles(dir, keys, initialMetadata(keys, clock.nowMs()));
  } else {
    await options.createRepository(dir, clock.nowMs());
  }
  const db = await target.open(dir);
  const bus = new MemoryStreamBus({ clock, scheduler: systemScheduler });
  const keyPrefix = `cp-test-${testStoreTag()}:`;
  const kv = options.kv?.(keyPrefix) ?? createEmbeddedKeyValueStore({ keyPrefix });
  const cp = await createControlPlane({
    materials, stores: { sql: db, bus, kv }, clock, random: systemRandom, scheduler: systemScheduler,
    gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], scryptParams: { N: 1024, r: 8, p: 1 }, claimIdleMs: 1_000,
    ...(options.artifactBytesMax === undefined ? {} : { otaArtifactBytesMax: options.artifactBytesMax }),
    ...(options.otaBlobs === undefined ? {} : { otaBlobs: options.otaBlobs }),
  });
  if (cp.ota === undefined) throw new Error('the control plane did not open the repository written into its data directory');
  // What start() does first: the first snapshot and timestamp (start itself would begin the consumers and sweeps).
  await cp.ota.repository.resignDue();
  return {
    dir, clock, materials, db, bus, cp, ota: cp.ota, keys,
    close: () => closeHarness({ cp, bus, kv, db, dir }, options.kv, keyPrefix),
  };
}

/**
 * Creates, uploads, signs (two release signers, two users, as `sdc release sign` does offline)
 * and publishes a release; returns its view. For rollout tests.
 */
export async function publishTestRelease(ota: OtaServices, keys: RepositoryKeys, release: {
  id: string; version: string; artifact: Uint8Array; platforms?: string[]; rebootRequired?: boolean;
}): Promise<Awaited<ReturnType<OtaServices['releases']['get']>>> {
  const sha256 = createHash('sha256').update(release.artifact).digest('hex');
  await ota.releases.create({
    id: release.id, version: release.version, artifact_name: 'agent.bin', platforms: release.platforms ?? ['linux-x64'], min_agent_version: '0.1.0',
    reboot_required: release.rebootRequired ?? true, health_check: { timeout_ms: 60_000, probes: ['kernel_status'] },
  }, 'olga');
  const artifact = release.artifact;
  await ota.releases.upload(release.id, (async function* () { yield artifact; })(), { sha256 }, 'olga');
  const proposal = await ota.releases.proposal(release.id);
  for (const [index, signer] of ['olga', 'sam'].entries()) {
    const key = keys.targets[index]!.key;
    await ota.releases.addSignature(release.id, { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(proposal.signed_canonical)) }, signer);
  }
  return ota.releases.publish(release.id, 'olga');
}

/**
 * The rollout policy port of a control plane, as createControlPlane wires it, except that every
 * creator name has `role` (default admin, whom the built-in policy allows every opcode): suites
 * that build their own RolloutService name creators who are no users.
 */
export function rolloutPolicyOf(cp: ControlPlane, role: Role | ((name: string) => Role | undefined) = 'admin'): RolloutPolicyPort {
  return {
    current: () => cp.policy.current(), gather: (policy, base) => cp.commands.policyFacts.peek(policy, base),
    reserve: (policy, base) => cp.commands.policyFacts.reserve(policy, base),
    roleOf: async (name) => (typeof role === 'function' ? role(name) : role),
  };
}
