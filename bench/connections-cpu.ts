import type { BenchRow } from './output.js';
import type { CpuReading } from './connections-messages.js';

/**
 * The CPU of `sdc bench connections`, by process role, over a fixed window of the hold (issues 15
 * and 17: what a held session's frame costs the gateway). Each process reads its own
 * process.cpuUsage() (every thread: the main one, libuv's pool, V8's GC helpers) at the window's
 * start and end, and each gateway the agents' messages it received (GatewayServer.received), so
 * the figure per frame is counted, not derived from the profile (N/30 + N/60 frames a second).
 * The window starts after a lead-in, when the ramp's handshakes and first AUTH work are over and
 * every session has its own heartbeat phase.
 */

/** The lead-in's bound: by 20 s into the hold the sessions authenticated last have settled (docs/benchmarks.md, the night of 2026-12-03). */
export const cpuLeadInMsMax = 20_000;

/** The window within a hold of `holdMs`: a lead-in of a third of the hold, at most cpuLeadInMsMax, and the rest. */
export function cpuWindowOf(holdMs: number): { leadInMs: number; windowMs: number } {
  const leadInMs = Math.min(cpuLeadInMsMax, Math.floor(holdMs / 3));
  return { leadInMs, windowMs: Math.max(0, holdMs - leadInMs) };
}

/** One process role's two readings (summed over the role's processes for the agents). */
export interface RoleCpu {
  readonly server: string;
  readonly role: 'gateway' | 'agents' | 'control-plane' | 'redis';
  readonly before: CpuReading;
  readonly after: CpuReading;
  /** Connections the role held (gateway: its sessions; agents: all of them); null where it means nothing. */
  readonly connections: number | null;
}

export const cpuUnits = {
  cpu_user_ms: 'ms of CPU (user) in the window',
  cpu_system_ms: 'ms of CPU (system) in the window',
  cpu_core: 'cores: CPU seconds per wall second of the window',
  frames_received: 'WebSocket messages from agents in the window (a gateway: its own; any other role: all gateways\')',
  cpu_us_per_frame_received: 'µs of CPU per frame received (the role\'s CPU over frames_received)',
} as const;

/** The CPU columns of a row: null when nothing was measured (no window, or not this row's role). */
export type CpuColumns = { readonly [K in keyof typeof cpuUnits]: number | null };

export const noCpuColumns: CpuColumns = { cpu_user_ms: null, cpu_system_ms: null, cpu_core: null, frames_received: null, cpu_us_per_frame_received: null };

const round3 = (value: number) => Math.round(value * 1000) / 1000;

/**
 * The columns for CPU between two readings over `windowMs` of wall time, per `frames` received. A
 * window of 0 ms has no rate and no frames none per frame: null, never Infinity or NaN.
 */
export function cpuColumns(before: CpuReading, after: CpuReading, windowMs: number, frames: number): CpuColumns {
  const userUs = Math.max(0, after.userUs - before.userUs);
  const systemUs = Math.max(0, after.systemUs - before.systemUs);
  return {
    cpu_user_ms: round3(userUs / 1000),
    cpu_system_ms: round3(systemUs / 1000),
    cpu_core: windowMs > 0 ? round3((userUs + systemUs) / 1000 / windowMs) : null,
    frames_received: frames,
    cpu_us_per_frame_received: frames > 0 ? round3((userUs + systemUs) / frames) : null,
  };
}

/** Frames the gateways received in the window, all of them. */
export function gatewayFrames(roles: readonly RoleCpu[]): number {
  return roles.filter((r) => r.role === 'gateway').reduce((n, r) => n + Math.max(0, r.after.framesReceived - r.before.framesReceived), 0);
}

/**
 * A row per role that is not a gateway (a gateway's CPU columns go on its memory row): memory
 * fields null, its CPU per frame the gateways received.
 */
export function cpuRows(roles: readonly RoleCpu[], windowMs: number): BenchRow[] {
  const frames = gatewayFrames(roles);
  return roles.filter((r) => r.role !== 'gateway').map((r) => ({
    server: r.server, role: r.role, connections: r.connections,
    rss_idle_mib: null, rss_loaded_mib: null, rss_per_connection_kib: null, rss_without_young_generation_per_connection_kib: null,
    heap_per_connection_kib: null, external_per_connection_kib: null,
    ...cpuColumns(r.before, r.after, windowMs, frames),
  }));
}

/** The whole window's figures for the details: frames a second, the gateways' and every measured process's CPU per frame. */
export function cpuSummary(roles: readonly RoleCpu[], windowMs: number): {
  frames_received_per_s: number | null; gateways_cpu_us_per_frame_received: number | null; processes_cpu_us_per_frame_received: number | null;
} {
  const frames = gatewayFrames(roles);
  const cpuUs = (r: RoleCpu) => Math.max(0, r.after.userUs - r.before.userUs) + Math.max(0, r.after.systemUs - r.before.systemUs);
  const sum = (which: (r: RoleCpu) => boolean) => roles.filter(which).reduce((n, r) => n + cpuUs(r), 0);
  return {
    frames_received_per_s: windowMs > 0 ? round3((frames * 1000) / windowMs) : null,
    gateways_cpu_us_per_frame_received: frames > 0 ? round3(sum((r) => r.role === 'gateway') / frames) : null,
    // Redis is server-wide (other clients count too), so it is left out of the processes' sum.
    processes_cpu_us_per_frame_received: frames > 0 ? round3(sum((r) => r.role !== 'redis') / frames) : null,
  };
}

/** This process's CPU (the bench and its control plane: API, consumers, the SQL store when embedded). */
export function ownCpu(): CpuReading {
  const { user, system } = process.cpuUsage();
  return { userUs: user, systemUs: system, framesReceived: 0 };
}

/** Redis's CPU from INFO cpu (used_cpu_user, used_cpu_sys, seconds): the whole server, every client's commands. */
export function redisCpuOf(info: string): CpuReading | undefined {
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  const user = field('used_cpu_user');
  const system = field('used_cpu_sys');
  if (!Number.isFinite(user) || !Number.isFinite(system)) return undefined;
  return { userUs: Math.round(user * 1e6), systemUs: Math.round(system * 1e6), framesReceived: 0 };
}
