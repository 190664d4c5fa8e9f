/**
 * Round-trip percentiles of a run in constant memory, from integer milliseconds with integer
 * arithmetic only (so a seed's figures replay exactly): values below 128 ms are counted exactly;
 * above, each power of two is split into 64 buckets, so a reported percentile is at most 1/64
 * (1.6 %) above the true one, and never above the exact maximum. The layout is HdrHistogram's
 * with two significant binary digits fewer.
 */
export const latencyRecorderLimits = Object.freeze({
  exactBelowMs: 128,
  subBucketsPerPowerOfTwo: 64,
  /** Values are clamped here: 2^31 ms is 24 days, longer than any run's virtual time. */
  valueMsMax: 2 ** 31 - 1,
});

export interface LatencyPercentiles {
  /** Round trips recorded (commands that reached a device result). */
  readonly count: number;
  /** null when count is 0. */
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

const { exactBelowMs, subBucketsPerPowerOfTwo } = latencyRecorderLimits;
/** log2(exactBelowMs) and log2(subBucketsPerPowerOfTwo). */
const exactBits = 7;
const subBits = 6;
const bucketCount = exactBelowMs + (31 - exactBits) * subBucketsPerPowerOfTwo;

function bucketOf(valueMs: number): number {
  if (valueMs < exactBelowMs) return valueMs;
  const exponent = 31 - Math.clz32(valueMs);
  const mantissa = valueMs >>> (exponent - subBits);
  return exactBelowMs + (exponent - exactBits) * subBucketsPerPowerOfTwo + (mantissa - subBucketsPerPowerOfTwo);
}

/** The largest value a bucket holds. */
function upperBoundOf(bucket: number): number {
  if (bucket < exactBelowMs) return bucket;
  const offset = bucket - exactBelowMs;
  const exponent = exactBits + Math.floor(offset / subBucketsPerPowerOfTwo);
  const mantissa = subBucketsPerPowerOfTwo + (offset % subBucketsPerPowerOfTwo);
  return (mantissa + 1) * 2 ** (exponent - subBits) - 1;
}

export class LatencyRecorder {
  readonly #counts = new Float64Array(bucketCount);
  #count = 0;
  #maxMs = 0;

  /** A negative or fractional value (a clock step) is recorded as its whole, non-negative part. */
  record(valueMs: number): void {
    const value = Math.min(latencyRecorderLimits.valueMsMax, Math.max(0, Math.floor(valueMs)));
    this.#counts[bucketOf(value)]! += 1;
    this.#count += 1;
    if (value > this.#maxMs) this.#maxMs = value;
  }

  /** Nearest rank: the smallest recorded value with at least p % of the values at or below it. */
  percentile(p: number): number | null {
    if (this.#count === 0) return null;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let bucket = 0; bucket < bucketCount; bucket += 1) {
      seen += this.#counts[bucket]!;
      if (seen >= rank) return Math.min(upperBoundOf(bucket), this.#maxMs);
    }
    return this.#maxMs;
  }

  summary(): LatencyPercentiles {
    return { count: this.#count, p50Ms: this.percentile(50), p90Ms: this.percentile(90), p99Ms: this.percentile(99), maxMs: this.#count === 0 ? null : this.#maxMs };
  }
}
