import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { SdcError } from '../../core/errors/index.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { IoctlDevice } from '../../kernel/device.js';
import { createMockTarget } from '../../kernel/mock/mock-target.js';
import { buildNativeLibrary } from '../../kernel/native/build.js';
import { integerOption, type Command } from '../command.js';
import { attachLatencySamples, benchReport } from '../../bench/output.js';
import { latencyHistogramPrecision } from '../../bench/stats.js';
import { benchOutputHelp, benchOutputOptions, cliProgress, emitBenchReport } from '../bench-output.js';

interface IoctlBenchRow {
  backend: 'mock' | 'native';
  opcode: 'EXEC_PING_KERNEL' | 'EXEC_GET_STATUS';
  calls: number;
  callsPerSecond: number;
  p50Us: number;
  p99Us: number;
}

const callsMax = 1_000_000;

/** Each call's latency in ms, by `backend_opcode` (snake case): the CDFs of `ioctl-percentiles.csv`. */
type IoctlSamplesMs = Record<string, number[]>;

type TableSummary = (samplesMs: readonly number[]) => { p50: number; p99: number };

/**
 * A row's p50/p99 in µs: HdrHistogram's (bench/latency-hdr.ts, recorded in whole µs, so exact
 * to the µs below 2,048 µs), as every bench's latency table; ioctl-samples.csv keeps each call.
 * The values are whole µs; the rounding to 0.1 only drops the float noise of ms * 1000.
 */
function ioctlLatencyColumns(summary: TableSummary, samplesMs: readonly number[]): { p50Us: number; p99Us: number } {
  const s = summary(samplesMs);
  return { p50Us: Math.round(s.p50 * 1000 * 10) / 10, p99Us: Math.round(s.p99 * 1000 * 10) / 10 };
}

/** Full bridge calls: sign the request, call the device, verify the signed response, decode. */
async function measure(backend: IoctlBenchRow['backend'], device: IoctlDevice, agentSeed: Uint8Array, servicePublicKey: Uint8Array, calls: number, onCall: () => void, samplesMs: IoctlSamplesMs, summary: TableSummary): Promise<IoctlBenchRow[]> {
  const bridge = new IoctlKernelBridge({ device, ed25519: createNodeEd25519Provider(), agentSeed, servicePublicKey, counterStart: 1n });
  const rows: IoctlBenchRow[] = [];
  for (const opcode of ['EXEC_PING_KERNEL', 'EXEC_GET_STATUS'] as const) {
    const run = opcode === 'EXEC_PING_KERNEL' ? () => bridge.pingKernel() : () => bridge.getStatus();
    for (let i = 0; i < Math.min(200, calls); i++) await run(); // warm-up: JIT and key caches
    const samples = new BigInt64Array(calls);
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) {
      const t0 = process.hrtime.bigint();
      await run();
      samples[i] = process.hrtime.bigint() - t0;
      onCall();
    }
    const elapsedNs = Number(process.hrtime.bigint() - started);
    samples.sort(); // ioctl-samples.csv lists each series ascending, as before the table moved to HdrHistogram
    const seriesMs = Array.from(samples, (ns) => Number(ns) / 1e6);
    samplesMs[`${backend}_${opcode.toLowerCase()}`] = seriesMs;
    rows.push({ backend, opcode, calls, callsPerSecond: Math.round(calls / (elapsedNs / 1e9)), ...ioctlLatencyColumns(summary, seriesMs) });
  }
  bridge.close();
  return rows;
}

export const ioctlBenchCommand: Command = {
  name: 'ioctl',
  summary: 'Kernel IOCTL calls per second and p50/p99 latency through the agent bridge, mock and native library in one run',
  usage: '[--calls N] [--json] [--out DIR]',
  optionHelp: [
    ['--calls N', `Measured calls per backend and opcode (default 20000, at most ${callsMax})`],
    ...benchOutputHelp(''),
  ],
  options: { calls: { type: 'string' }, ...benchOutputOptions },
  async run(args, io) {
    const calls = integerOption(args, 'calls', 20_000, 1, callsMax);
    const agentSeed = new Uint8Array(32).fill(1);
    const serviceSeed = new Uint8Array(32).fill(2);
    // Two opcodes on each of two backends; progress counts calls (a skipped native backend completes at the end).
    const progress = cliProgress(io, 'bench ioctl', calls * 4, ' calls');
    let done = 0;
    const onCall = () => progress.update(++done);
    const mock = createMockTarget({ agentSeed, serviceSeed, clock: { nowMs: () => Date.now() } });
    const samplesMs: IoctlSamplesMs = {};
    // Imported here: hdr-histogram-js costs about 0.1 s to load, which every start of the CLI would pay otherwise.
    const { hdrLatencyTableSummary } = await import('../../bench/latency-hdr.js');
    const rows = await measure('mock', mock.device, agentSeed, mock.servicePublicKey, calls, onCall, samplesMs, hdrLatencyTableSummary);
    let nativeSkipped: string | undefined;
    let libraryPath: string | undefined;
    try {
      libraryPath = buildNativeLibrary({ variant: 'release' }).libraryPath;
    } catch (error) {
      if (!SdcError.is(error, 'KERNEL_BUILD_FAILED')) throw error;
      nativeSkipped = error.message;
    }
    if (libraryPath) {
      // Imported here: it loads koffi and its native addon, which every start of the CLI would pay otherwise.
      const { createNativeTarget } = await import('../../kernel/native/native-target.js');
      const native = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
      try {
        rows.push(...await measure('native', native.device, agentSeed, native.servicePublicKey, calls, onCall, samplesMs, hdrLatencyTableSummary));
      } finally {
        native.cleanup();
      }
    }
    progress.finish();
    const report = benchReport({
      benchmark: 'ioctl',
      parameters: { calls },
      // The same-run baseline (issue 14): the mock device, the same bridge (sign, call, verify,
      // decode) without the native library; each row's p50 over the mock's for its opcode.
      results: rows.map((r) => {
        const mockP50 = rows.find((m) => m.backend === 'mock' && m.opcode === r.opcode)?.p50Us;
        return {
          backend: r.backend, opcode: r.opcode, calls: r.calls, calls_per_s: r.callsPerSecond, p50_us: r.p50Us, p99_us: r.p99Us,
          ratio_to_mock_p50: mockP50 !== undefined && mockP50 > 0 ? r.p50Us / mockP50 : null,
        };
      }),
      units: { calls: 'calls', calls_per_s: 'calls per second', p50_us: 'microseconds', p99_us: 'microseconds', ratio_to_mock_p50: 'ratio of p50_us to the mock device\'s for the same opcode, same run' },
      latencyHistogram: latencyHistogramPrecision,
      details: {
        what: 'IoctlKernelBridge calls: Ed25519-sign request, DeviceIoControl-shaped call, verify signed response, decode; sequential, one process',
        native_skipped: nativeSkipped ?? null,
      },
    });
    attachLatencySamples(report, samplesMs);
    await emitBenchReport(args, io, report);
    if (nativeSkipped && args.values.json !== true) io.stdout(`native skipped: ${nativeSkipped}\n`);
    return 0;
  },
};
