/**
 * Lets every promise continuation that a virtual timer's callback started run to its end before
 * the next timer fires, as in a process between two timer events. Resolved from a setImmediate
 * (a full turn of the event loop) for now; see runSimulation's scheduler notes in docs/benchmarks.md.
 */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}
