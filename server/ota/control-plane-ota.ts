import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SdcError } from '../../core/errors/index.js';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { ServiceContext } from '../control-plane/context.js';
import { BlobArtifactStore, FileArtifactStore } from './artifact-store.js';
import { blobRoutes } from './blob-routes.js';
import { EmbeddedBlobStore, loadOrCreateBlobCredentials, S3BlobStore, type BlobStore, type S3Endpoint } from './blob-store.js';
import type { RepositoryAlarm } from './image-repository.js';
import { openOtaServices, type OtaOptions, type OtaServices } from './ota-service.js';
import { releaseLimits } from './releases.js';
import { rolloutRoutes } from './rollout-routes.js';
import { otaRoutes } from './routes.js';

/** What the control plane's alert service offers (EventHandlers.raiseAlert): an alert, its audit entry, the live event. */
export type RaiseAlert = (alert: { deviceId: null; kind: string; severity: string; message: string; atMs: number; detail: JsonObject; actor: string }) => Promise<unknown>;

export interface OtaAttachOptions {
  readonly context: ServiceContext;
  readonly app: FastifyInstance;
  readonly dataDir: string;
  readonly raiseAlert: RaiseAlert;
  readonly artifactBytesMax?: number;
  readonly rollouts: OtaOptions['rollouts'];
  /** How often running rollouts are ticked and executions checked for their timeouts (default otaSweepDefaults.rolloutSweepIntervalMs). */
  readonly rolloutSweepIntervalMs?: number;
  /** The blob store: embedded in the data directory unless S3 is configured. */
  readonly blobs?: OtaBlobOptions;
}

/** `sdc serve --s3-endpoint/--s3-bucket/--public-url` (docs/ota.md, "Artifacts and downloads"). */
export interface OtaBlobOptions {
  /** An S3-compatible bucket (AWS S3, MinIO) instead of the embedded store; S3 checks its presigned URLs itself. */
  readonly s3?: S3Endpoint;
  /**
   * The base URL devices and operators reach this API at (e.g. `https://cp.example:8080`): the
   * embedded store's presigned URLs name it, and a URL signed for one host is refused at another.
   * Default: derived from the API's listen address (0.0.0.0 and :: become the loopback address).
   */
  readonly publicBaseUrl?: string;
  /** The largest object a presigned PUT may write to the embedded store (default the artifact limit). */
  readonly putBytesMax?: number;
}

export interface AttachedOta {
  readonly services: OtaServices | undefined;
  readonly sweeps: ReadonlyArray<readonly [string, number, () => Promise<unknown>]>;
  /** The blob store (always, with or without an image repository): `blobStore.presign` is the one presigner. */
  readonly blobStore: BlobStore;
  /** Tells the embedded store where the API listens, when no public base URL was configured. */
  onListening(apiUrl: string): void;
}

/** Defaults of the periodic passes: both are cheap (a few primary-key reads) and only sign when due. */
export const otaSweepDefaults = {
  resignCheckIntervalMs: 60_000, alarmCheckIntervalMs: 3_600_000,
  /** A second: a soak's end or a free place in the rate window is acted on within it; a tick of an idle rollout is a few reads. */
  rolloutSweepIntervalMs: 1_000,
  /** A minute: expired presigned release uploads are deleted within it (every presign also sweeps first). */
  uploadSweepIntervalMs: 60_000,
} as const;

/**
 * The image repository in a control plane: opened from the data directory (none without `sdc
 * ota init`, and the routes then say so), its routes registered on the app before it is made
 * ready, its alarms raised as operator alerts (each with an audit entry; the log line is the
 * repository's), and the periodic passes the control plane schedules: re-signing the online roles
 * when due, checking expiries, ticking rollouts, deleting the objects of expired presigned
 * release uploads with the embedded store's stale temporary files (which are also removed when the
 * store opens, image repository or not). Passes are named so `every` logs their failures.
 */
export async function attachOta(options: OtaAttachOptions): Promise<AttachedOta> {
  const { blobStore, onListening } = await openBlobStore(options);
  const artifactBytesMax = options.artifactBytesMax ?? releaseLimits.artifactBytesMax;
  const services = await openOtaServices({
    context: options.context, dataDir: options.dataDir, raiseAlert: alarmToAlert(options), rollouts: options.rollouts,
    // Release artifacts live in the blob store; artifacts of an older data directory are still read from their files.
    artifacts: new BlobArtifactStore(blobStore, new FileArtifactStore(join(options.dataDir, 'ota', 'artifacts'))),
    ...(options.artifactBytesMax === undefined ? {} : { artifactBytesMax }),
  });
  options.app.register(otaRoutes, { ota: () => services });
  options.app.register(rolloutRoutes, { rollouts: () => services?.rollouts });
  options.app.register(blobRoutes, { store: () => (blobStore instanceof EmbeddedBlobStore ? blobStore : undefined) });
  if (services === undefined) return { services, sweeps: [], blobStore, onListening };
  return {
    services, blobStore, onListening,
    sweeps: [
      ['TUF online roles re-sign', otaSweepDefaults.resignCheckIntervalMs, () => services.repository.resignDue()],
      ['TUF expiry alarms', otaSweepDefaults.alarmCheckIntervalMs, () => services.repository.checkAlarms()],
      ['OTA rollouts sweep', options.rolloutSweepIntervalMs ?? otaSweepDefaults.rolloutSweepIntervalMs, () => services.rollouts.sweep()],
      ['OTA release uploads sweep', otaSweepDefaults.uploadSweepIntervalMs, () => sweepUploads(services, blobStore)],
    ],
  };
}

/**
 * Expired presigned release uploads, then the embedded store's stale temporary files (a PUT a
 * stopped control plane was receiving); both run, the first failure is thrown after.
 */
async function sweepUploads(services: OtaServices, blobStore: BlobStore): Promise<void> {
  const [uploads, temporaries] = await Promise.allSettled([
    services.releases.sweepExpiredUploads(),
    blobStore instanceof EmbeddedBlobStore ? blobStore.removeStaleTemporaries() : Promise.resolve(0),
  ]);
  if (uploads.status === 'rejected') throw uploads.reason;
  if (temporaries.status === 'rejected') throw temporaries.reason;
}

/** S3 when configured, else the embedded store in `<dataDir>/blobs` with its key in `<dataDir>/blobs.key.json`. */
async function openBlobStore(options: OtaAttachOptions): Promise<{ blobStore: BlobStore; onListening: (apiUrl: string) => void }> {
  const blobs = options.blobs ?? {};
  if (blobs.s3 !== undefined) return { blobStore: new S3BlobStore(blobs.s3), onListening: () => undefined };
  let listenBase: string | undefined;
  const blobStore = new EmbeddedBlobStore({
    directory: join(options.dataDir, 'blobs'), credentials: await loadOrCreateBlobCredentials(options.dataDir), clock: options.context.clock,
    putBytesMax: blobs.putBytesMax ?? options.artifactBytesMax ?? releaseLimits.artifactBytesMax,
    publicBaseUrl: blobs.publicBaseUrl ?? (() => {
      if (listenBase === undefined) throw new SdcError('OTA_PRESIGN_INVALID', 'no public base URL yet: the API is not listening and none was configured (sdc serve --public-url)');
      return listenBase;
    }),
  });
  // At open too, with or without an image repository (devices' artifact uploads use the store as well).
  await blobStore.removeStaleTemporaries().catch((error: unknown) => options.context.logger.warn({ err: error }, 'removing the blob store\'s stale temporary files failed'));
  return { blobStore, onListening: (apiUrl) => { listenBase = publicBaseFromListenUrl(apiUrl); } };
}

/** The listen URL as devices can reach it: a wildcard address is not one, so it becomes loopback (configure --public-url for other hosts). */
export function publicBaseFromListenUrl(apiUrl: string): string {
  const url = new URL(apiUrl);
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  if (url.hostname === '[::]') url.hostname = '[::1]';
  return url.origin;
}

function alarmToAlert(options: OtaAttachOptions): (alarm: RepositoryAlarm) => Promise<void> {
  return async (alarm) => {
    const critical = alarm.kind === 'tuf_restored_backup' || (alarm.expiresAtMs !== undefined && alarm.expiresAtMs <= options.context.clock.nowMs());
    await options.raiseAlert({
      deviceId: null, kind: alarm.kind, severity: critical ? 'critical' : 'warning', message: alarm.message, atMs: options.context.clock.nowMs(), actor: 'system',
      detail: {
        role: alarm.role, version: alarm.version,
        ...(alarm.expiresAtMs === undefined ? {} : { expires_at_ms: alarm.expiresAtMs }), ...(alarm.highWater === undefined ? {} : { high_water: alarm.highWater }),
      },
    });
  };
}
