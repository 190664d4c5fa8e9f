import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/**
 * One JSON schema per `sdc bench` report (docs/benchmarks.md, "Output"): the common envelope
 * with each bench's result row. A row must carry the fields a reader plots (its label and its
 * key figures); other fields are allowed (a bench may add a column) but must be plain values.
 * Validated on a tiny run of every bench in npm test (cli/bench-suite.test.ts and the heavier
 * benches' own tests).
 */
const Value = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);
const Num = Type.Number();
const NumOrNull = Type.Union([Type.Number(), Type.Null()]);

const Environment = Type.Object({
  node: Type.String(), openssl: Type.String(), platform: Type.String(), arch: Type.String(), cpu: Type.String(),
  cpu_count: Type.Integer({ minimum: 1 }), memory_total_mib: Type.Integer({ minimum: 1 }), git_commit: Type.Union([Type.String(), Type.Null()]),
  kernel: Type.String(),
  load_average_before: Type.Array(Type.Number({ minimum: 0 }), { minItems: 3, maxItems: 3 }),
  load_average_after: Type.Array(Type.Number({ minimum: 0 }), { minItems: 3, maxItems: 3 }),
  loaded_machine: Type.Boolean(),
  seed: Value,
  store_versions: Type.Optional(Type.Record(Type.String(), Type.String())),
});

function row(fields: Record<string, TSchema>) {
  return Type.Object(fields, { additionalProperties: Value });
}

const Spread = Type.Object({ row: Type.Integer(), label: Type.String(), field: Type.String(), min: Num, median: Num, max: Num });

/**
 * `latency_histogram`: the HdrHistogram a report's latency percentiles come from (roundtrip,
 * reconnect, ioctl, enroll, api, agents; bench/stats.ts latencyHistogramPrecision). Optional: reports
 * recorded before 4 December 2026 have none (their roundtrip, reconnect, ioctl and enroll tables
 * were exact nearest-rank percentiles) and `sdc report --from` still reads them.
 */
const LatencyHistogram = Type.Object({
  library: Type.Literal('hdr-histogram-js'), significant_digits: Type.Integer({ minimum: 1, maximum: 5 }),
  lowest_discernible_ms: Type.Number({ exclusiveMinimum: 0 }), highest_trackable_ms: Type.Number({ exclusiveMinimum: 0 }), value_at_percentile: Type.String(),
});

function report(benchmark: string, rowSchema: TSchema) {
  return Type.Object({
    benchmark: Type.Literal(benchmark), schema_version: Type.Literal(1), environment: Environment,
    parameters: Type.Record(Type.String(), Value), results: Type.Array(rowSchema), units: Type.Record(Type.String(), Type.String()),
    latency_histogram: Type.Optional(LatencyHistogram),
    details: Type.Optional(Type.Unknown()),
    repeats: Type.Optional(Type.Object({ count: Type.Integer({ minimum: 2 }), spread: Type.Array(Spread) })),
  });
}

const latency = { p50_ms: Num, p90_ms: Num, p99_ms: Num, max_ms: Num };

export const benchReportSchemas = {
  ed25519: report('ed25519', row({ provider: Type.String(), operation: Type.String(), operations: Num, ops_per_s: Num, us_per_op: Num })),
  ioctl: report('ioctl', row({ backend: Type.String(), opcode: Type.String(), calls: Num, calls_per_s: Num, p50_us: Num, p99_us: Num })),
  bus: report('bus', row({ adapter: Type.String(), mode: Type.String(), appends: Num, appends_per_s: Num, ratio_to_redis_benchmark: NumOrNull, ratio_to_array_push: NumOrNull })),
  ingest: report('ingest', row({ mode: Type.String(), samples_stored: Num, samples_per_s: Num, ratio_to_ed25519_verify: Num })),
  // Every row carries its ratio to the same run's baseline, the scheduler's empty-event floor (null when that measured 0 CPU).
  sim: report('sim', row({ agents: Num, ratio_to_empty_event_floor: NumOrNull })),
  roundtrip: report('roundtrip', row({ measure: Type.String(), samples: Num, ...latency, mean_ms: Num })),
  // A row per gateway and the bare server (idle, then with traffic: memory, and a gateway's CPU), then one per other process role (agents, control-plane, redis: CPU only, memory null).
  connections: report('connections', row({
    server: Type.String(), role: Type.String(), connections: NumOrNull, rss_per_connection_kib: NumOrNull,
    cpu_core: NumOrNull, frames_received: NumOrNull, cpu_us_per_frame_received: NumOrNull,
  })),
  reconnect: report('reconnect', row({ what: Type.String(), count: Num, ...latency })),
  api: report('api', row({ metric: Type.String(), kind: Type.String() })),
  // k6's metric names and kinds (bench/harness/agent-scenario.ts); a gauge row (vus) has last, min and max.
  agents: report('agents', row({ metric: Type.String(), kind: Type.Union([Type.Literal('trend'), Type.Literal('rate'), Type.Literal('counter'), Type.Literal('gauge')]) })),
  enroll: report('enroll', row({ path: Type.String(), requests: Num, failures: Num, per_s: Num, server_cpu_ms_per_request: Num, client_cpu_ms_per_request: Num, p50_ms: Num, p99_ms: Num })),
} as const;

export type BenchName = keyof typeof benchReportSchemas;

const compiled = new Map<string, ReturnType<typeof TypeCompiler.Compile<TSchema>>>(Object.entries(benchReportSchemas).map(([name, schema]) => [name, TypeCompiler.Compile<TSchema>(schema)]));

/** The schema errors of a bench's JSON report (empty when it validates), as `path: message` lines. */
export function benchReportErrors(json: unknown): string[] {
  const name = (json as { benchmark?: unknown } | null)?.benchmark;
  const check = typeof name === 'string' ? compiled.get(name) : undefined;
  if (check === undefined) return [`benchmark: unknown bench ${JSON.stringify(name)}`];
  return [...check.Errors(json)].slice(0, 20).map((e) => `${e.path}: ${e.message}`);
}
