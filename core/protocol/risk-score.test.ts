import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { alertThreshold, riskModel, riskScore, type RiskBaseline, type RiskTelemetry } from './risk-score.js';

const idle: RiskTelemetry = { cpuPct: 5, memPct: 30, diskPct: 40, netRxBytesPerSec: 2048, netTxBytesPerSec: 512 };
const mib = 2 ** 20;

const pct = fc.double({ min: 0, max: 100, noNaN: true });
const rate = fc.double({ min: 0, max: 1e15, noNaN: true });
const count = fc.integer({ min: 0, max: 10_000_000 });
const telemetryArb: fc.Arbitrary<RiskTelemetry> = fc.record({
  cpuPct: pct, memPct: pct, diskPct: pct,
  netRxBytesPerSec: rate, netTxBytesPerSec: rate,
  processCount: count, failedAuthCount: fc.integer({ min: 0, max: 1000 }),
}, { requiredKeys: ['cpuPct', 'memPct', 'diskPct', 'netRxBytesPerSec', 'netTxBytesPerSec'] });
const baselineArb: fc.Arbitrary<RiskBaseline | undefined> = fc.option(fc.record({
  netRxBytesPerSec: rate, netTxBytesPerSec: rate, processCount: count,
}, { requiredKeys: [] }), { nil: undefined });

const weights: Record<string, number> = {
  cpu: riskModel.cpu.weight, memory: riskModel.memory.weight, disk: riskModel.disk.weight,
  net_rx: riskModel.net_rx.weight, net_tx: riskModel.net_tx.weight,
  processes: riskModel.processes.weight, failed_auth: riskModel.failed_auth.weight,
};

describe('riskScore examples', () => {
  it('scores an idle device 0 with no factors', () => {
    assert.deepEqual(riskScore({ ...idle, processCount: 180, failedAuthCount: 0 }), { score: 0, factors: [] });
  });

  it('keeps load alone below the alert threshold', () => {
    const result = riskScore({ ...idle, cpuPct: 100, memPct: 100, diskPct: 100 });
    assert.equal(result.score, 55);
    assert.ok(result.score < alertThreshold);
    assert.deepEqual(result.factors, [
      { name: 'cpu', contribution: 20 }, { name: 'memory', contribution: 20 }, { name: 'disk', contribution: 15 },
    ]);
  });

  it('alerts on brute force under load', () => {
    const result = riskScore({ ...idle, cpuPct: 100, memPct: 100, failedAuthCount: 10 });
    assert.equal(result.score, 80);
    assert.ok(result.score >= alertThreshold);
    assert.equal(result.factors[0]?.name, 'failed_auth');
  });

  it('ramps linearly between the low and high marks', () => {
    assert.deepEqual(riskScore({ ...idle, cpuPct: 85 }).factors, [{ name: 'cpu', contribution: 10 }]);
    assert.deepEqual(riskScore({ ...idle, failedAuthCount: 3 }).factors, [{ name: 'failed_auth', contribution: 12 }]);
    assert.deepEqual(riskScore({ ...idle, netTxBytesPerSec: 20 * mib }).factors, [{ name: 'net_tx', contribution: 20 }]);
  });

  it('measures network and processes against the baseline when given one', () => {
    const baseline = { netTxBytesPerSec: mib, netRxBytesPerSec: mib, processCount: 200 };
    // 5x the normal outbound rate: (5 - 2) / (10 - 2) of 20 points.
    assert.deepEqual(riskScore({ ...idle, netTxBytesPerSec: 5 * mib }, baseline).factors, [{ name: 'net_tx', contribution: 7.5 }]);
    // 5 MiB/s is under the absolute mark when there is no baseline.
    assert.deepEqual(riskScore({ ...idle, netRxBytesPerSec: 5 * mib }).factors, []);
    assert.deepEqual(riskScore({ ...idle, processCount: 800 }, baseline).factors, [{ name: 'processes', contribution: 15 }]);
    // The floor keeps a near-zero baseline from turning small traffic into an alarm.
    assert.deepEqual(riskScore({ ...idle, netTxBytesPerSec: 100 * 1024 }, { netTxBytesPerSec: 0 }).factors, []);
  });

  it('caps the score at 100 while listing every factor', () => {
    const result = riskScore({
      cpuPct: 100, memPct: 100, diskPct: 100, netRxBytesPerSec: 1e12, netTxBytesPerSec: 1e12, processCount: 1e6, failedAuthCount: 50,
    });
    assert.equal(result.score, 100);
    assert.equal(result.factors.length, 7);
    assert.equal(result.factors.reduce((sum, f) => sum + f.contribution, 0), 140);
  });
});

describe('riskScore properties', () => {
  it('stays within 0..100 with each factor within its weight, for any valid input', () => {
    fc.assert(fc.property(telemetryArb, baselineArb, (telemetry, baseline) => {
      const { score, factors } = riskScore(telemetry, baseline);
      assert.ok(score >= 0 && score <= 100, `score ${score}`);
      let sum = 0;
      for (const factor of factors) {
        assert.ok(factor.contribution > 0 && factor.contribution <= weights[factor.name]!, `${factor.name} ${factor.contribution}`);
        sum += factor.contribution;
      }
      assert.equal(score, Math.min(100, Math.round(sum * 100) / 100));
    }), { numRuns: 1000 });
  });

  const fields = ['cpuPct', 'memPct', 'diskPct', 'netRxBytesPerSec', 'netTxBytesPerSec', 'processCount', 'failedAuthCount'] as const;
  for (const field of fields) {
    it(`never lowers the score when ${field} rises`, () => {
      const isPct = field.endsWith('Pct');
      const value = isPct ? pct : field.startsWith('net') ? fc.oneof(rate, fc.double({ min: 0, max: 200 * mib, noNaN: true })) : fc.integer({ min: 0, max: 3000 });
      fc.assert(fc.property(telemetryArb, baselineArb, value, value, (telemetry, baseline, a, b) => {
        const [low, high] = a <= b ? [a, b] : [b, a];
        const lower = riskScore({ ...telemetry, [field]: low }, baseline);
        const higher = riskScore({ ...telemetry, [field]: high }, baseline);
        assert.ok(lower.score <= higher.score, `${field} ${low} -> ${lower.score}, ${high} -> ${higher.score}`);
      }), { numRuns: 300 });
    });
  }

  it('an optional factor reported as zero scores like one left out', () => {
    fc.assert(fc.property(telemetryArb, baselineArb, (telemetry, baseline) => {
      const { processCount: _p, failedAuthCount: _f, ...required } = telemetry;
      assert.deepEqual(riskScore({ ...required, failedAuthCount: 0 }, baseline), riskScore(required, baseline));
    }), { numRuns: 200 });
  });

  it('refuses NaN, infinities, negatives and percentages over 100 with PROTO_INVALID_ARGUMENT', () => {
    const bad = fc.oneof(fc.constant(Number.NaN), fc.constant(Infinity), fc.constant(-Infinity), fc.double({ min: -1e9, max: -Number.MIN_VALUE, noNaN: true }));
    fc.assert(fc.property(telemetryArb, fc.constantFrom(...fields), bad, (telemetry, field, value) => {
      assert.throws(() => riskScore({ ...telemetry, [field]: value }), (error: unknown) =>
        SdcError.is(error, 'PROTO_INVALID_ARGUMENT') && error.details.field === field);
    }), { numRuns: 300 });
    assert.throws(() => riskScore({ ...idle, cpuPct: 100.5 }), (error: unknown) => SdcError.is(error, 'PROTO_INVALID_ARGUMENT'));
    assert.throws(() => riskScore(idle, { netTxBytesPerSec: -1 }), (error: unknown) =>
      SdcError.is(error, 'PROTO_INVALID_ARGUMENT') && error.details.field === 'baseline.netTxBytesPerSec');
  });
});
