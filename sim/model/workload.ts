import { commandMeanGapMs, opcodePicker } from '../scenario.js';
import { Ev } from './events.js';
import type { ModelWorld } from './world.js';

/**
 * The operators' commands, drawn exactly as the full tier draws them from the run's `commands`
 * stream (sim/run.ts): a gap uniform in [0, 2 x mean], then the target device and the opcode by
 * the scenario's weights. Both tiers therefore create the same commands, for the same devices, at
 * the same virtual times; what happens to them afterwards is each tier's own.
 */
export class Workload {
  readonly #w: ModelWorld;
  readonly #gapMaxMs: number;
  readonly #pickOpcode: () => string;

  constructor(world: ModelWorld) {
    this.#w = world;
    const meanGapMs = commandMeanGapMs(world.scenario.commands, world.agents);
    this.#gapMaxMs = meanGapMs > 0 ? Math.max(1, Math.round(2 * meanGapMs)) : 0;
    this.#pickOpcode = opcodePicker(world.scenario.commands.mix, world.rng.commands);
  }

  start(): void {
    if (this.#gapMaxMs > 0) this.#next();
  }

  #next(): void {
    this.#w.after(this.#w.rng.commands.intBetween(0, this.#gapMaxMs), Ev.commandTick);
  }

  onTick(): void {
    const w = this.#w;
    if (!w.inSafety()) return;
    const agent = w.rng.commands.intBelow(w.agents);
    w.controlPlane.create(agent, this.#pickOpcode());
    this.#next();
  }
}
