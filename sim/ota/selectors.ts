import type { SeededRandom } from '../../core/random/prng.js';
import type { ScenarioOta } from '../scenario.js';
import type { BrickMode, CrashPlan } from './device-updates.js';

// The seeded choices of a rollout's device fates, apart from ota-run.ts (which loads the server's
// OTA modules) so that the model tier (sim/model/rollout.ts) draws them with the same code and
// from the same streams, in the same order, without loading the real code.

/**
 * Which devices the release bricks: of the devices that take it, in the order they take it,
 * exactly floor((k + phase) x ratio) - floor(phase x ratio) of the first k (the phase drawn from
 * the seed), so any run of n consecutive devices holds floor or ceil of n x ratio bricked ones.
 */
export function brickSelector(bricks: ScenarioOta['bricks'], random: SeededRandom): () => BrickMode | null {
  if (bricks === undefined) return () => null;
  const select = ratioSelector(bricks.ratio, random);
  return () => (select() ? bricks.mode : null);
}

/** Evenly spread picks at an exact ratio, from a seeded phase (brickSelector's rule); never draws when the ratio is absent or zero. */
export function ratioSelector(ratio: { readonly numerator: number; readonly denominator: number } | undefined, random: SeededRandom): () => boolean {
  if (ratio === undefined || ratio.numerator === 0) return () => false;
  const { numerator, denominator } = ratio;
  let k = random.intBelow(denominator);
  return () => {
    const picked = Math.floor(((k + 1) * numerator) / denominator) > Math.floor((k * numerator) / denominator);
    k += 1;
    return picked;
  };
}

/**
 * Where agents crash mid-update (scenario `ota.crashes`): a share of the executions, spread as
 * bricks are; each at a kernel call drawn from the seed (a rollback only for a device whose health
 * check fails, the only one that makes that call), before or after it, down for a seeded time.
 */
export function crashPlanner(crashes: ScenarioOta['crashes'], random: SeededRandom): (brick: BrickMode | null) => CrashPlan | null {
  if (crashes === undefined) return () => null;
  const select = ratioSelector(crashes.ratio, random);
  return (brick) => {
    if (!select()) return null;
    const intents = brick === 'health_check_fails' ? (['stage', 'commit', 'rollback'] as const) : (['stage', 'commit'] as const);
    return { intent: random.pick(intents), beforeCall: random.chance(1, 2), downMs: random.intBetween(crashes.downMsMin, crashes.downMsMax) };
  };
}
