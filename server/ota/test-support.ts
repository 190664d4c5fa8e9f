import type { Harness } from '../control-plane/test-support.js';
import { MemoryArtifactStore } from './artifact-store.js';
import type { RepositoryAlarm } from './image-repository.js';
import { openOtaServices, type OtaServices } from './ota-service.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from './repository-init.js';
import { otaRoutes } from './routes.js';

/**
 * A harness's control plane with an image repository: keys generated in memory (the offline ones
 * stay with the test, as release signers keep theirs), the files `sdc ota init` writes in the
 * data directory, the routes registered before the app is first made ready, and the first
 * snapshot and timestamp signed.
 */
export async function withOta(harness: Harness, options: { artifactBytesMax?: number } = {}): Promise<{ ota: OtaServices; keys: RepositoryKeys; alarms: RepositoryAlarm[] }> {
  const keys = generateRepositoryKeys();
  await writeRepositoryFiles(harness.dir, keys, initialMetadata(keys, harness.clock.nowMs()));
  const alarms: RepositoryAlarm[] = [];
  const ota = await openOtaServices({
    context: harness.cp.context, dataDir: harness.dir, artifacts: new MemoryArtifactStore(),
    ...(options.artifactBytesMax === undefined ? {} : { artifactBytesMax: options.artifactBytesMax }),
    raiseAlert: async (alarm) => { alarms.push(alarm); },
  });
  if (ota === undefined) throw new Error('the repository files were just written');
  harness.cp.app.register(otaRoutes, { ota: () => ota });
  await ota.repository.resignDue();
  return { ota, keys, alarms };
}
