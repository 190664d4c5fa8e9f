import { SdcError } from '../../core/errors/index.js';
import { percentile } from '../stats.js';

/**
 * k6 thresholds for the Node harness: the same expressions k6 reads from the shared scenario
 * definition (bench/k6/scenarios.json), over the same metric kinds, so a scenario passes or fails
 * for the same reason under both. Subset: `p(N)`, `avg`, `min`, `max`, `med` on trends, `rate` on
 * rates, `count` and `rate` (per second) on counters; operators `<`, `<=`, `>`, `>=`, `==`, `!=`.
 * Percentiles are nearest-rank (an observed latency), where k6 interpolates: on small samples
 * the two can differ by one sample's gap.
 */

/** What k6 exits with when a threshold is crossed; the harness uses the same code. */
export const thresholdsCrossedExitCode = 99;

export type MetricKind = 'trend' | 'rate' | 'counter' | 'gauge';

/** Samples of one metric; bounded, so a long run cannot grow memory without limit. */
export interface Metric {
  readonly name: string;
  readonly kind: MetricKind;
  /** Trend: values (ms); rate: 1 or 0 per sample; counter: increments; gauge: readings in time order. */
  readonly values: number[];
}

/** A run of hours at a high rate stays within memory: samples past this are counted, not kept. */
export const metricSamplesMax = 2_000_000;

export class MetricSet {
  readonly #metrics = new Map<string, Metric>();
  #overflow = 0;

  constructor(kinds: Readonly<Record<string, MetricKind>>) {
    for (const [name, kind] of Object.entries(kinds)) this.#metrics.set(name, { name, kind, values: [] });
  }

  add(name: string, value: number | boolean): void {
    const metric = this.#metrics.get(name);
    if (metric === undefined) throw new RangeError(`metric ${name} is not declared`);
    if (metric.values.length >= metricSamplesMax) { this.#overflow += 1; return; }
    metric.values.push(typeof value === 'boolean' ? (value ? 1 : 0) : value);
  }

  get(name: string): Metric | undefined {
    return this.#metrics.get(name);
  }

  names(): string[] {
    return [...this.#metrics.keys()];
  }

  /** Samples dropped at the limit (0 on any run this harness is meant for). */
  get overflow(): number {
    return this.#overflow;
  }
}

const expressionPattern = /^\s*(p\((\d+(?:\.\d+)?)\)|avg|min|max|med|rate|count|value)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/;

export interface ThresholdExpression {
  readonly source: string;
  readonly aggregate: string;
  readonly percentile?: number;
  readonly operator: '<' | '<=' | '>' | '>=' | '==' | '!=';
  readonly bound: number;
}

export function parseThreshold(source: string): ThresholdExpression {
  const match = expressionPattern.exec(source);
  if (match === null) throw new SdcError('CLI_USAGE', `threshold '${source}' is not of the form p(99)<500, avg<200, rate<0.01 or count<1`);
  const pct = match[2] === undefined ? undefined : Number(match[2]);
  if (pct !== undefined && (pct <= 0 || pct > 100)) throw new SdcError('CLI_USAGE', `threshold '${source}': a percentile is above 0 and at most 100`);
  return {
    source, aggregate: match[2] === undefined ? match[1]! : 'p', operator: match[3] as ThresholdExpression['operator'], bound: Number(match[4]),
    ...(pct === undefined ? {} : { percentile: pct }),
  };
}

/** The aggregate a threshold compares; empty metrics aggregate to 0, as in k6. */
export function aggregateOf(metric: Metric, expression: ThresholdExpression, elapsedMs: number): number {
  const values = metric.values;
  const sum = values.reduce((s, v) => s + v, 0);
  const valid: Record<MetricKind, readonly string[]> = { trend: ['p', 'avg', 'min', 'max', 'med'], rate: ['rate'], counter: ['count', 'rate'], gauge: ['value', 'min', 'max'] };
  if (!valid[metric.kind].includes(expression.aggregate)) {
    throw new SdcError('CLI_USAGE', `threshold '${expression.source}' on ${metric.name}: a ${metric.kind} takes ${valid[metric.kind].join(', ')}`);
  }
  if (values.length === 0) return 0;
  switch (expression.aggregate) {
    case 'rate': return metric.kind === 'rate' ? sum / values.length : elapsedMs > 0 ? (sum * 1000) / elapsedMs : 0;
    case 'count': return sum;
    case 'avg': return sum / values.length;
    case 'value': return values[values.length - 1]!;
    default: break;
  }
  const sorted = [...values].sort((a, b) => a - b);
  if (expression.aggregate === 'min') return sorted[0]!;
  if (expression.aggregate === 'max') return sorted.at(-1)!;
  return percentile(sorted, expression.aggregate === 'med' ? 0.5 : expression.percentile! / 100);
}

function holds(value: number, operator: ThresholdExpression['operator'], bound: number): boolean {
  switch (operator) {
    case '<': return value < bound;
    case '<=': return value <= bound;
    case '>': return value > bound;
    case '>=': return value >= bound;
    case '==': return value === bound;
    case '!=': return value !== bound;
  }
}

export interface ThresholdResult {
  readonly metric: string;
  readonly threshold: string;
  readonly value: number;
  readonly crossed: boolean;
}

/**
 * Every threshold of a definition against the run's metrics. A threshold on a metric the
 * harness does not record is a usage error (k6 refuses one on an unknown metric too).
 */
export function evaluateThresholds(thresholds: Readonly<Record<string, readonly string[]>>, metrics: MetricSet, elapsedMs: number): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const [name, sources] of Object.entries(thresholds)) {
    const metric = metrics.get(name);
    if (metric === undefined) throw new SdcError('CLI_USAGE', `threshold on ${name}: the harness records ${metrics.names().join(', ')}`);
    for (const source of sources) {
      const expression = parseThreshold(source);
      const value = aggregateOf(metric, expression, elapsedMs);
      results.push({ metric: name, threshold: source, value, crossed: !holds(value, expression.operator, expression.bound) });
    }
  }
  return results;
}

/** What every scenario harness's report (`sdc bench api`, `sdc bench agents`) states of its run in `details`. */
export interface ScenarioRunDetails {
  scenario: string;
  scenario_file: string;
  command: string;
  target: 'in-process' | 'remote';
  thresholds: ThresholdResult[];
  thresholds_crossed: number;
}
