import { readFile } from 'node:fs/promises';
import { createNodeTufCrypto } from '../../runtime/tuf-crypto-node.js';
import { fileExists } from '../../runtime/atomic-file.js';
import type { ServiceContext } from '../control-plane/context.js';
import { FileArtifactStore, type ArtifactStore } from './artifact-store.js';
import { FileHighWaterStore, type HighWaterStore } from './high-water.js';
import { ImageRepository, type OnlineRoleSchedule, type RepositoryAlarm } from './image-repository.js';
import { ReleaseService } from './releases.js';
import { RolloutService, type RolloutServiceOptions } from './rollouts.js';
import { repositoryPaths } from './repository-init.js';
import { readOnlineKeyFile } from './tuf-keys.js';
import { join } from 'node:path';

/** The image repository and the release service, as the control plane holds them. */
export interface OtaServices {
  readonly repository: ImageRepository;
  readonly releases: ReleaseService;
  readonly rollouts: RolloutService;
}

export interface OtaOptions {
  readonly context: ServiceContext;
  readonly dataDir: string;
  /** Raises an operator alert with its audit entry (EventHandlers.raiseAlert). */
  readonly raiseAlert: (alarm: RepositoryAlarm) => Promise<void>;
  readonly artifacts?: ArtifactStore;
  readonly highWater?: HighWaterStore;
  readonly artifactBytesMax?: number;
  readonly schedules?: Partial<Record<'snapshot' | 'timestamp', OnlineRoleSchedule>>;
  /** The rollout coordinator's signer, frame check and tuning (rollouts.ts). */
  readonly rollouts: Pick<RolloutServiceOptions, 'signer' | 'verifyReportFrame' | 'policy' | 'timeouts' | 'directorLifetimeMs' | 'onExecutionFinished' | 'onNoticeRefusalUnaudited' | 'onArtifactUrlNotRenewed' | 'approvals'>;
}

/**
 * Opens the repository of `<dataDir>/tuf` (written by `sdc ota init`): the online keys, the
 * high-water mark file, the bootstrap root and targets imported when the database holds no root.
 * Undefined when the data directory has no repository (the routes then answer
 * OTA_REPOSITORY_NOT_INITIALISED), so a control plane without OTA starts as before.
 */
export async function openOtaServices(options: OtaOptions): Promise<OtaServices | undefined> {
  const paths = repositoryPaths(options.dataDir);
  if (!(await fileExists(paths.snapshotKey))) return undefined;
  const crypto = createNodeTufCrypto();
  const repository = new ImageRepository({
    db: options.context.db, clock: options.context.clock, logger: options.context.logger, crypto,
    highWater: options.highWater ?? new FileHighWaterStore(paths.highWater),
    onlineKeys: { snapshot: await readOnlineKeyFile(paths.snapshotKey), timestamp: await readOnlineKeyFile(paths.timestampKey) },
    raiseAlarm: options.raiseAlert, ...(options.schedules === undefined ? {} : { schedules: options.schedules }),
  });
  if (await fileExists(paths.root)) {
    const imported = await repository.importInitial({ root: await readFile(paths.root, 'utf8'), targets: await readFile(paths.targets, 'utf8') });
    if (imported) options.context.logger.info('TUF root and targets version 1 imported from the data directory');
  }
  await repository.checkOnlineKeys();
  const releases = new ReleaseService({
    context: options.context, repository, crypto,
    artifacts: options.artifacts ?? new FileArtifactStore(join(options.dataDir, 'ota', 'artifacts')),
    ...(options.artifactBytesMax === undefined ? {} : { artifactBytesMax: options.artifactBytesMax }),
  });
  const rollouts = new RolloutService({ context: options.context, releases, ...options.rollouts });
  return { repository, releases, rollouts };
}
