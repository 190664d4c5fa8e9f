import type { FastifyInstance } from 'fastify';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { ServiceContext } from '../control-plane/context.js';
import type { RepositoryAlarm } from './image-repository.js';
import { openOtaServices, type OtaOptions, type OtaServices } from './ota-service.js';
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
}

/** Defaults of the periodic passes: both are cheap (a few primary-key reads) and only sign when due. */
export const otaSweepDefaults = {
  resignCheckIntervalMs: 60_000, alarmCheckIntervalMs: 3_600_000,
  /** A second: a soak's end or a free place in the rate window is acted on within it; a tick of an idle rollout is a few reads. */
  rolloutSweepIntervalMs: 1_000,
} as const;

/**
 * The image repository in a control plane: opened from the data directory (none without `sdc
 * ota init`, and the routes then say so), its routes registered on the app before it is made
 * ready, its alarms raised as operator alerts (each with an audit entry; the log line is the
 * repository's), and the two periodic passes the control plane schedules: re-signing the online
 * roles when due and checking expiries. Passes are named so `every` logs their failures.
 */
export async function attachOta(options: OtaAttachOptions): Promise<{ services: OtaServices | undefined; sweeps: ReadonlyArray<readonly [string, number, () => Promise<unknown>]> }> {
  const services = await openOtaServices({
    context: options.context, dataDir: options.dataDir, raiseAlert: alarmToAlert(options), rollouts: options.rollouts,
    ...(options.artifactBytesMax === undefined ? {} : { artifactBytesMax: options.artifactBytesMax }),
  });
  options.app.register(otaRoutes, { ota: () => services });
  options.app.register(rolloutRoutes, { rollouts: () => services?.rollouts });
  if (services === undefined) return { services, sweeps: [] };
  return {
    services,
    sweeps: [
      ['TUF online roles re-sign', otaSweepDefaults.resignCheckIntervalMs, () => services.repository.resignDue()],
      ['TUF expiry alarms', otaSweepDefaults.alarmCheckIntervalMs, () => services.repository.checkAlarms()],
      ['OTA rollouts sweep', options.rolloutSweepIntervalMs ?? otaSweepDefaults.rolloutSweepIntervalMs, () => services.rollouts.sweep()],
    ],
  };
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
