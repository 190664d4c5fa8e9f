import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuColumns, cpuRows, cpuSummary, cpuWindowOf, redisCpuOf, type RoleCpu } from './connections-cpu.js';

const reading = (userUs: number, systemUs: number, framesReceived = 0) => ({ userUs, systemUs, framesReceived });

describe('bench connections: CPU per process role over a window of the hold', () => {
  it('the window starts a third into the hold, at most 20 s in', () => {
    assert.deepEqual(cpuWindowOf(0), { leadInMs: 0, windowMs: 0 });
    assert.deepEqual(cpuWindowOf(3_000), { leadInMs: 1_000, windowMs: 2_000 });
    assert.deepEqual(cpuWindowOf(65_000), { leadInMs: 20_000, windowMs: 45_000 });
    assert.deepEqual(cpuWindowOf(150_000), { leadInMs: 20_000, windowMs: 130_000 });
  });

  it('CPU between two readings: user and system apart, cores over the window, µs per frame received', () => {
    // 2.5 s user + 0.5 s system over 10 s, 4,000 frames: 0.3 core, 750 µs a frame.
    assert.deepEqual(cpuColumns(reading(1_000_000, 200_000, 100), reading(3_500_000, 700_000, 4_100), 10_000, 4_000), {
      cpu_user_ms: 2_500, cpu_system_ms: 500, cpu_core: 0.3, frames_received: 4_000, cpu_us_per_frame_received: 750,
    });
  });

  it('no window and no frames give no rate and no figure per frame (null, never Infinity or NaN)', () => {
    assert.deepEqual(cpuColumns(reading(10, 10), reading(20, 30), 0, 0), {
      cpu_user_ms: 0.01, cpu_system_ms: 0.02, cpu_core: null, frames_received: 0, cpu_us_per_frame_received: null,
    });
  });

  it('the other roles are divided by every gateway\'s frames; Redis is not in the processes\' sum', () => {
    const roles: RoleCpu[] = [
      { server: 'gw-1', role: 'gateway', before: reading(0, 0, 10), after: reading(600_000, 150_000, 1_010), connections: null },
      { server: 'gw-2', role: 'gateway', before: reading(0, 0, 0), after: reading(700_000, 50_000, 1_000), connections: null },
      { server: 'agent-processes-2', role: 'agents', before: reading(5_000_000, 0), after: reading(6_000_000, 0), connections: 6_000 },
      { server: 'bench-control-plane', role: 'control-plane', before: reading(0, 0), after: reading(400_000, 100_000), connections: null },
      { server: 'redis', role: 'redis', before: reading(0, 0), after: reading(9_000_000, 1_000_000), connections: null },
    ];
    const rows = cpuRows(roles, 10_000);
    assert.deepEqual(rows.map((r) => [r['server'], r['role'], r['frames_received'], r['cpu_core'], r['cpu_us_per_frame_received'], r['rss_per_connection_kib']]), [
      ['agent-processes-2', 'agents', 2_000, 0.1, 500, null],
      ['bench-control-plane', 'control-plane', 2_000, 0.05, 250, null],
      ['redis', 'redis', 2_000, 1, 5_000, null],
    ]);
    assert.deepEqual(cpuSummary(roles, 10_000), {
      frames_received_per_s: 200, gateways_cpu_us_per_frame_received: 750, processes_cpu_us_per_frame_received: 1_500,
    });
    assert.deepEqual(cpuSummary(roles, 0), { frames_received_per_s: null, gateways_cpu_us_per_frame_received: 750, processes_cpu_us_per_frame_received: 1_500 });
  });

  it('reads Redis\'s CPU from INFO cpu, or nothing from an answer without it', () => {
    assert.deepEqual(redisCpuOf('# CPU\r\nused_cpu_sys:12.500000\r\nused_cpu_user:30.250001\r\nused_cpu_sys_children:0.0\r\n'), reading(30_250_001, 12_500_000));
    assert.equal(redisCpuOf(''), undefined);
  });
});
