import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDeployment, type Deployment } from '../../../server/deployment/deployment.js';
import { initDeployment, type DeploymentMaterials } from '../../../server/materials/materials.js';
import { systemClock, systemRandom, systemScheduler } from '../../../runtime/system.js';

/** How long a `--real` run may wait for its agents to come online and for its commands to drain, on real time. */
export const realWaitMs = 120_000;

/**
 * A deployment on embedded stores for `sdc sim --real` tests (fast password hashing, 2 s
 * heartbeats) with an admin `sim-admin` whose password is passed to `run`; stopped and its
 * directory removed afterwards, whatever `run` did.
 */
export async function withSimRealDeployment(dirPrefix: string, run: (system: { deployment: Deployment; materials: DeploymentMaterials; password: string }) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), dirPrefix));
  const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
  const deployment = await startDeployment({
    materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
    scryptParams: { N: 1024, r: 8, p: 1 }, gateway: { heartbeatIntervalMs: 2_000 },
  });
  try {
    const password = 'a long enough test password';
    await deployment.controlPlane!.auth.users.add({ name: 'sim-admin', role: 'admin', password, nowMs: systemClock.nowMs() });
    await run({ deployment, materials, password });
  } finally {
    await deployment.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
