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
