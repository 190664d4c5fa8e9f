import type { OtaViolation as Violation } from '../checkers.js';
import type { DeviceOtaRecord } from './ota-observer.js';

/**
 * The OTA checkers (issue 10, "Tests and the main job"): each takes what the stores and the
 * simulated devices recorded and returns violations instead of throwing, as sim/checkers.ts does,
 * so a test can plant one and see it caught. A property that nothing exercised (no device bricked
 * in the first wave, no download cut) is a violation too: a scenario that tests nothing must not pass.
 */
export interface RolloutFacts {
  readonly status: string;
  readonly pauseReason: string | null;
  readonly waveIndex: number;
  /** Each wave's devices, as the coordinator fixed them at start. */
  readonly waves: readonly (readonly string[])[];
  readonly executions: ReadonlyArray<{ readonly deviceId: string; readonly wave: number; readonly state: string }>;
  /** The rollout's status changes from the audit log, in order (`ota.rollout.<status>` and the wave it was at). */
  readonly history: ReadonlyArray<{ readonly status: string; readonly wave: number }>;
  /** When the rollout's record last changed (its status or wave), on the run's clock; absent where not known. */
  readonly updatedAtMs?: number;
}

const kept = 20;

function capped(violations: Violation[]): Violation[] {
  return violations.slice(0, kept);
}

/** No device outside the first wave was notified, nor installed (committed) the release; and some device of the first wave bricked. */
export function checkFirstWaveOnly(rollout: RolloutFacts, records: Iterable<DeviceOtaRecord>): Violation[] {
  const firstWave = new Set(rollout.waves[0] ?? []);
  const violations: Violation[] = [];
  for (const execution of rollout.executions) {
    if (execution.wave !== 0 || !firstWave.has(execution.deviceId)) {
      violations.push({ checker: 'ota_first_wave_only', message: `device ${execution.deviceId} of wave ${execution.wave} got an execution (${execution.state}) although the first wave bricked` });
    }
  }
  let bricked = 0;
  for (const record of records) {
    if (record.committed && !firstWave.has(record.deviceId)) {
      violations.push({ checker: 'ota_first_wave_only', message: `device ${record.deviceId}, outside the first wave, installed the bricking release` });
    }
    if (record.brick !== null && firstWave.has(record.deviceId)) bricked += 1;
  }
  if (bricked === 0) violations.push({ checker: 'ota_first_wave_only', message: 'no device of the first wave bricked: the scenario tested nothing' });
  return capped(violations);
}

/** The rollout paused on its error threshold in the first wave, and never moved past it or completed. */
export function checkPausedInFirstWave(rollout: RolloutFacts | undefined): Violation[] {
  if (rollout === undefined) return [{ checker: 'ota_paused_in_first_wave', message: 'the rollout never started' }];
  const violations: Violation[] = [];
  if (rollout.status !== 'paused' || rollout.pauseReason !== 'error_threshold' || rollout.waveIndex !== 0) {
    violations.push({ checker: 'ota_paused_in_first_wave', message: `the rollout ended ${rollout.status} (${rollout.pauseReason ?? 'no pause reason'}) at wave ${rollout.waveIndex}, not paused by its error threshold in wave 0` });
  }
  for (const change of rollout.history) {
    if (change.status === 'completed' || change.wave > 0) {
      violations.push({ checker: 'ota_paused_in_first_wave', message: `the rollout went ${change.status} at wave ${change.wave}` });
    }
  }
  return capped(violations);
}

/** The rollout completed and every device of it succeeded (so the download property below covered a whole rollout). */
export function checkRolloutCompleted(rollout: RolloutFacts | undefined, fleetSize: number): Violation[] {
  if (rollout === undefined) return [{ checker: 'ota_rollout_completed', message: 'the rollout never started' }];
  const violations: Violation[] = [];
  if (rollout.status !== 'completed') violations.push({ checker: 'ota_rollout_completed', message: `the rollout ended ${rollout.status} (${rollout.pauseReason ?? '-'}) at wave ${rollout.waveIndex}` });
  const succeeded = rollout.executions.filter((e) => e.state === 'succeeded').length;
  if (succeeded !== fleetSize) violations.push({ checker: 'ota_rollout_completed', message: `${succeeded} of ${fleetSize} devices succeeded` });
  for (const execution of rollout.executions) {
    if (execution.state !== 'succeeded') violations.push({ checker: 'ota_rollout_completed', message: `device ${execution.deviceId} ended ${execution.state}` });
  }
  return capped(violations);
}

/**
 * Every cut download went on from the bytes it held: each attempt after a cut asked for exactly
 * that offset, the first one the server answered was a 206 continuing there, and the whole
 * artifact's SHA-256 matched the digest the control plane signed. With `cutsExpected`, at least
 * one download was cut.
 */
export function checkDownloadsResumed(records: Iterable<DeviceOtaRecord>, cutsExpected: boolean): Violation[] {
  const violations: Violation[] = [];
  let cuts = 0;
  for (const record of records) {
    const { attempts } = record;
    attempts.forEach((attempt, index) => {
      if (attempt.cutAtOffset === null) return;
      cuts += 1;
      const held = attempt.cutAtOffset;
      const later = attempts.slice(index + 1);
      const answered = later.find((a) => a.status !== 'unreachable');
      for (const retry of later.slice(0, answered === undefined ? later.length : later.indexOf(answered) + 1)) {
        if (retry.startOffset !== held) violations.push({ checker: 'ota_download_resumed', message: `device ${record.deviceId} was cut at ${held} bytes and asked again from ${retry.startOffset}` });
      }
      if (answered === undefined) violations.push({ checker: 'ota_download_resumed', message: `device ${record.deviceId} was cut at ${held} bytes and never got the rest` });
      else if (held > 0 && answered.status !== 206) violations.push({ checker: 'ota_download_resumed', message: `device ${record.deviceId} resumed at ${held} bytes with status ${answered.status}, not 206` });
    });
    if (attempts.length > 0 && record.downloaded === null && record.ended !== 'canceled') {
      violations.push({ checker: 'ota_download_resumed', message: `device ${record.deviceId}'s download never finished (${attempts.length} attempts)` });
    }
    if (record.downloaded !== null && !record.downloaded.matched) {
      violations.push({ checker: 'ota_download_resumed', message: `device ${record.deviceId}'s artifact has SHA-256 ${record.downloaded.sha256}, not the signed digest` });
    }
  }
  if (cutsExpected && cuts === 0) violations.push({ checker: 'ota_download_resumed', message: 'no download was cut: the scenario tested nothing' });
  return capped(violations);
}

/**
 * Devices whose notice came without an artifact URL took the TUF targets route: no presigned GET,
 * at least one request to the targets route when they got as far as the download, and the bytes
 * they staged have the signed digest. With `expected`, some device downloaded that way.
 */
export function checkTargetsRoute(records: Iterable<DeviceOtaRecord>, expected: boolean): Violation[] {
  const violations: Violation[] = [];
  let downloaded = 0;
  for (const record of records) {
    if (!record.targetsRoute) continue;
    if (record.attempts.length > 0) violations.push({ checker: 'ota_targets_route', message: `device ${record.deviceId} had no artifact URL but made ${record.attempts.length} presigned GETs` });
    if (record.downloaded === null) continue;
    downloaded += 1;
    if (record.targetFetches === 0) violations.push({ checker: 'ota_targets_route', message: `device ${record.deviceId} had no artifact URL and never asked the targets route, yet staged an artifact` });
    if (!record.downloaded.matched) violations.push({ checker: 'ota_targets_route', message: `device ${record.deviceId}'s artifact from the targets route has SHA-256 ${record.downloaded.sha256}, not the signed digest` });
  }
  if (expected && downloaded === 0) violations.push({ checker: 'ota_targets_route', message: 'no device downloaded by the TUF targets route: the scenario tested nothing' });
  return capped(violations);
}

/** A device's update as its journal ends the run, and its kernel's status then. */
export interface DeviceEnd {
  readonly deviceId: string;
  readonly executionId: string;
  readonly state: string;
  readonly intent: string | null;
  /** The approved target's version; null when the device never approved one. */
  readonly targetVersion: string | null;
  readonly kernel: { readonly currentVersion: string; readonly stagedVersion: string; readonly watchdogArmed: boolean };
}

const installedEnds = new Set(['succeeded']);
const undoneEnds = new Set(['rolled_back', 'failed', 'rejected', 'canceled']);

/**
 * Never a half-applied update (issue 10: "a crash at any point of an update resumes or rolls
 * back"): at the end every device's journal holds a finished execution and no kernel call in
 * flight, and its kernel agrees: a succeeded update runs the target version with no watchdog
 * armed; one that ended otherwise runs the version installed before; a device that made a
 * kernel call of the update did so at most once per call (a crash never made the kernel stage,
 * commit or roll back twice). Every device whose agent crashed mid-update was restarted from its
 * journal. With `crashesExpected`, some agent crashed mid-update. Silent bricks (never back from
 * the reboot) are left out: their kernel's watchdog is theirs to settle.
 */
export function checkCrashRecovered(records: Iterable<DeviceOtaRecord>, ends: readonly DeviceEnd[], options: { readonly crashesExpected: boolean; readonly installedVersion: string }): Violation[] {
  const violations: Violation[] = [];
  const silent = new Set<string>();
  let crashes = 0;
  for (const record of records) {
    if (record.ended === 'silent') silent.add(record.deviceId);
    for (const call of ['stageUpdate', 'commitUpdate', 'rollbackUpdate']) {
      const count = record.kernelCalls[call] ?? 0;
      if (count > 1) violations.push({ checker: 'ota_crash_recovered', message: `device ${record.deviceId} made ${call} ${count} times in one execution` });
    }
    if (record.crash === null) continue;
    crashes += 1;
    if (!record.crash.recovered) violations.push({ checker: 'ota_crash_recovered', message: `device ${record.deviceId} crashed at ${record.crash.intent} and its update runner never recovered` });
  }
  for (const end of ends) {
    if (silent.has(end.deviceId)) continue;
    const where = `device ${end.deviceId} ended ${end.state}${end.intent === null ? '' : ` with ${end.intent} in flight`}, kernel at ${end.kernel.currentVersion || '-'} (staged ${end.kernel.stagedVersion || '-'}, watchdog ${end.kernel.watchdogArmed ? 'armed' : 'off'})`;
    if (end.intent !== null) violations.push({ checker: 'ota_crash_recovered', message: `${where}: a kernel call never settled` });
    else if (installedEnds.has(end.state)) {
      if (end.kernel.currentVersion !== end.targetVersion || end.kernel.watchdogArmed) violations.push({ checker: 'ota_crash_recovered', message: `${where}: not the installed ${end.targetVersion}` });
    } else if (undoneEnds.has(end.state)) {
      if (end.kernel.currentVersion !== options.installedVersion) violations.push({ checker: 'ota_crash_recovered', message: `${where}: not back at ${options.installedVersion}` });
    } else violations.push({ checker: 'ota_crash_recovered', message: `${where}: the update never finished` });
  }
  if (options.crashesExpected && crashes === 0) violations.push({ checker: 'ota_crash_recovered', message: 'no agent crashed mid-update: the scenario tested nothing' });
  return capped(violations);
}
