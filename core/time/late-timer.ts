/**
 * A silence timer that fired late: judge the peer's silence now, or after the stall.
 *
 * Why: Node runs the timers that fell due before it reads the sockets (libuv's loop runs timers,
 * then polls for I/O). When a process did not run for a while (the machine starved of CPU, a long
 * GC pause, a blocked loop), the frames its peer sent meanwhile are still unread when its silence
 * timer fires. Judging silence at that moment drops a live session whose frame is waiting in the
 * socket's buffer, measured by a wall clock that kept running while the process could not listen
 * (docs/gateway.md, "Deadlines after a stall"). Both ends have such a timer: the gateway's session
 * timer (server/gateway/gateway-core.ts) and the agent's heartbeat tick (agent/agent-core.ts).
 *
 * So the time the process was not running is not counted against the peer: a timer that fired more
 * than `lateToleranceMs` after it was due defers its judgement by its lateness (at most
 * `recheckMsMax`), once; the frames read in between count. The judgement after a deferral is
 * final, however late it fires, so a dead peer is still dropped, at most `recheckMsMax` later.
 * Sans-IO: the caller passes the times and keeps the per-session flag.
 */
export interface LateTimerLimits {
  /** Lateness ordinary for a busy loop; no deferral below it (every real timer is a little late). */
  readonly lateToleranceMs: number;
  /** The longest deferral: the bound on how much later than its deadline a dead peer is closed. */
  readonly recheckMsMax: number;
}

/** For a session with this heartbeat interval: a tenth of it, at most 1 s, tolerated; deferral at most one interval. */
export function lateTimerLimitsFor(heartbeatIntervalMs: number): LateTimerLimits {
  return { lateToleranceMs: Math.max(1, Math.min(1_000, Math.floor(heartbeatIntervalMs / 10))), recheckMsMax: heartbeatIntervalMs };
}

/**
 * `dueMs`: when the timer was meant to fire; `deferredAlready`: this session's judgement was
 * deferred once and nothing was heard since. Returns the delay after which to judge instead of
 * now, or undefined to judge now.
 */
export function stallDeferralMs(dueMs: number, nowMs: number, deferredAlready: boolean, limits: LateTimerLimits): number | undefined {
  const lateMs = nowMs - dueMs;
  if (deferredAlready || !(lateMs > limits.lateToleranceMs)) return undefined;
  return Math.min(lateMs, limits.recheckMsMax);
}
