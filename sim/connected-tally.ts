/**
 * How many agents are connected (running with a ready session), kept as agents change instead
 * of asking all of them each time.
 *
 * Why: the run reads the count for every progress line, time-series sample and start-up/liveness
 * check, once or more per virtual second; scanning every agent's `connected` getter chain for it
 * was 5.6 % of the steady state's CPU at 10,000 agents (docs/benchmarks.md). An agent marks itself
 * whenever anything could change its answer (a frame in or out, its transport closing, an event
 * of its core, a boot, crash, leave or stop: its core's state moves only through those), and
 * `count()` asks only the agents marked since the last count. The dirty list holds each agent at
 * most once, so it is bounded by the fleet.
 */
export interface TalliedAgent {
  readonly connected: boolean;
  /** Marked since the last count (the tally's own bookkeeping). */
  tallyDirty: boolean;
  /** Counted as connected at the last count (the tally's own bookkeeping). */
  tallyConnected: boolean;
}

export class ConnectedTally {
  #connected = 0;
  readonly #dirty: TalliedAgent[] = [];

  mark(agent: TalliedAgent): void {
    if (agent.tallyDirty) return;
    agent.tallyDirty = true;
    this.#dirty.push(agent);
  }

  count(): number {
    for (const agent of this.#dirty) {
      agent.tallyDirty = false;
      const connected = agent.connected;
      if (connected === agent.tallyConnected) continue;
      agent.tallyConnected = connected;
      this.#connected += connected ? 1 : -1;
    }
    this.#dirty.length = 0;
    return this.#connected;
  }
}
