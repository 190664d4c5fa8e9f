/**
 * Lets every promise continuation that a virtual timer's callback started run to its end before
 * the next timer fires, as in a process between two timer events. node runs its nextTick queue
 * only once the promise (microtask) queue is empty, and alternates the two until both are, so a
 * promise resolved from process.nextTick settles after every continuation queued before it and
 * every continuation those queue in turn. Nothing in a virtual run waits on real I/O, so this is
 * all a setImmediate (a full turn of the event loop, 4-5 times the cost) gave, and the trace hash
 * of a seed is the same with either (sim/drain.test.ts).
 */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((resolve) => process.nextTick(resolve));
}
