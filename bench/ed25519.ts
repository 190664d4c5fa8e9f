import { SdcError } from '../core/errors/index.js';
import { createNobleEd25519Provider } from '../core/crypto/ed25519-noble.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import type { Ed25519Provider } from '../core/ports/ports.js';

/**
 * Ed25519 sign/verify throughput per provider, for docs/decisions/0001-ed25519-providers.md.
 * Each case runs for a fixed wall-clock duration, so slow providers still get a fair sample and
 * the whole run takes a predictable time (6 cases x seconds).
 */

export interface Ed25519BenchOptions {
  durationMsPerCase: number;
  /** Message size; 512 bytes is a typical signed envelope (TELEMETRY, COMMAND_ACK). */
  messageBytes?: number;
  /** Monotonic clock in milliseconds; injectable so tests need not depend on real time. */
  nowMs?: () => number;
  /** Called after each measured case (one operation of one provider): progress for long runs. */
  onCaseDone?: (casesDone: number, casesTotal: number) => void;
}

export interface Ed25519BenchResult {
  provider: string;
  operation: 'sign' | 'verify';
  operations: number;
  elapsedMs: number;
  operationsPerSecond: number;
}

export const defaultMessageBytes = 512;
/** Operations between clock reads: keeps the clock cost out of the figure without overshooting the duration. */
const batchOperations = 16;
/** Hard stop for the measuring loop, whatever the clock says. */
const operationsMax = 50_000_000;
const warmupOperations = 64;

function measure(operation: () => void, durationMs: number, nowMs: () => number): { operations: number; elapsedMs: number } {
  for (let i = 0; i < warmupOperations; i++) operation();
  const startMs = nowMs();
  let operations = 0;
  let elapsedMs = 0;
  while (elapsedMs < durationMs && operations < operationsMax) {
    for (let i = 0; i < batchOperations; i++) operation();
    operations += batchOperations;
    elapsedMs = nowMs() - startMs;
  }
  return { operations, elapsedMs };
}

export function runEd25519Bench(options: Ed25519BenchOptions): Ed25519BenchResult[] {
  const nowMs = options.nowMs ?? (() => performance.now());
  const message = new Uint8Array(options.messageBytes ?? defaultMessageBytes).map((_, i) => (i * 31) & 0xff);
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const cases: ReadonlyArray<readonly [string, Ed25519Provider]> = [
    ['node:crypto (cached KeyObjects)', createNodeEd25519Provider()],
    ['node:crypto (uncached, KeyObject per call)', createNodeEd25519Provider({ keyCacheEntriesMax: 0 })],
    ['@noble/ed25519', createNobleEd25519Provider()],
  ];
  const results: Ed25519BenchResult[] = [];
  for (const [label, provider] of cases) {
    const publicKey = provider.publicKeyFromSeed(seed);
    const signature = provider.sign(seed, message);
    // A bench that measures a broken verify would be worse than none.
    if (!provider.verify(publicKey, message, signature)) throw new Error(`${label}: signature does not verify`);
    const runs = {
      sign: measure(() => { provider.sign(seed, message); }, options.durationMsPerCase, nowMs),
      verify: measure(() => { provider.verify(publicKey, message, signature); }, options.durationMsPerCase, nowMs),
    };
    for (const operation of ['sign', 'verify'] as const) {
      const { operations, elapsedMs } = runs[operation];
      results.push({ provider: label, operation, operations, elapsedMs, operationsPerSecond: elapsedMs > 0 ? (operations * 1000) / elapsedMs : 0 });
      options.onCaseDone?.(results.length, cases.length * 2);
    }
  }
  return results;
}

export function renderEd25519BenchTable(results: readonly Ed25519BenchResult[]): string {
  const rows = results.map((r) => [r.provider, r.operation, Math.round(r.operationsPerSecond).toLocaleString('en-US'),
    r.operations > 0 ? ((r.elapsedMs * 1000) / r.operations).toFixed(1) : '-', String(r.operations)]);
  const header = ['provider', 'op', 'ops/s', 'us/op', 'operations'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}
