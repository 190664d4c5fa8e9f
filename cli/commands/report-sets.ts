/**
 * The named sets `sdc report --run SET` runs before it builds the report: each step is one `sdc`
 * command line writing its outputs with `--out` into `runs/<dir>`. Seeds are fixed here, so the
 * same set run twice gives the same simulation and fault-matrix figures byte for byte (the
 * benches are wall-clock and vary). docs/report.md lists both sets.
 */

export interface RunStep {
  /** The step's directory under `runs/`, also its name in the report. */
  readonly dir: string;
  /** `sdc` argv without `--out` (appended by the runner); `{scenarios}` stands for the checkout's sim/scenarios. */
  readonly argv: readonly string[];
  /** Store a step cannot run without: skipped, with the reason in the report, when `sdc report` was not given it. */
  readonly needs?: 'redis';
  /** Store options the step takes when `sdc report` has them (`--redis`, `--mysql`). */
  readonly stores?: ReadonlyArray<'redis' | 'mysql'>;
}

export interface RunSet {
  readonly name: string;
  readonly summary: string;
  readonly steps: readonly RunStep[];
}

const simSeeds = (prefix: string, scenario: string, seeds: readonly number[], args: readonly string[]): RunStep[] =>
  seeds.map((seed) => ({ dir: `${prefix}-seed-${seed}`, argv: ['sim', '--scenario', `{scenarios}/${scenario}.json`, ...args, '--seed', String(seed)] }));

/**
 * Small enough for a test; every kind of input once. A 2-agent round trip gives the latency CDF,
 * the ratio to its echo baseline and the /metrics start and end scrapes around its commands
 * (the command rate and latency panels). It replaced a 200 ms ingest run, which gave the scrapes
 * too: both set up a deployment, and with both the set cost about 2 s more CPU (docs/report.md).
 */
const tiny: RunSet = {
  name: 'tiny',
  summary: 'a few seconds of each kind: a 2-agent round trip (latency CDF, /metrics at the start and end of its commands), three short benches, 3 simulation seeds (smoke x2, gateway-restart x1), a 2-fault model-tier matrix',
  steps: [
    { dir: 'bench-roundtrip', argv: ['bench', 'roundtrip', '--agents', '2', '--commands', '3'] },
    { dir: 'bench-ed25519', argv: ['bench', 'ed25519', '--duration', '10ms'] },
    { dir: 'bench-ioctl', argv: ['bench', 'ioctl', '--calls', '20'] },
    { dir: 'bench-sim', argv: ['bench', 'sim', '--tier', 'model', '--max-agents', '4', '--duration', '2s'] },
    ...simSeeds('sim-smoke', 'smoke', [1, 2], ['--agents', '2', '--duration', '10s']),
    ...simSeeds('sim-gateway-restart', 'gateway-restart', [1], ['--agents', '2', '--duration', '40s']),
    { dir: 'chaos-matrix', argv: ['chaos', 'matrix', '--seeds', '2', '--fault', 'partition,gateway_crash', '--agents', '3', '--duration', '10s', '--tier', 'model'] },
  ],
};

/**
 * Real sizes for a paper: hours on a 2-core machine. Roundtrip and connections at three fleet
 * sizes give the throughput- and memory-against-agents figures; the Redis benches need --redis.
 */
const paper: RunSet = {
  name: 'paper',
  summary: 'real sizes: round trip at 10/100/500 agents, connections at 100/500/1000 (Redis), every other bench, 5 seeds of three scenarios, the full matrix over 10 seeds',
  steps: [
    ...[10, 100, 500].map((agents): RunStep => ({ dir: `bench-roundtrip-${agents}`, argv: ['bench', 'roundtrip', '--agents', String(agents), '--commands', '20'], stores: ['redis', 'mysql'] })),
    ...[100, 500, 1000].map((agents): RunStep => ({ dir: `bench-connections-${agents}`, argv: ['bench', 'connections', '--agents', String(agents), '--gateways', '2'], needs: 'redis', stores: ['redis', 'mysql'] })),
    { dir: 'bench-reconnect', argv: ['bench', 'reconnect', '--agents', '200', '--commands', '50'], needs: 'redis', stores: ['redis'] },
    { dir: 'bench-bus', argv: ['bench', 'bus', '--duration-ms', '5000'], stores: ['redis'] },
    { dir: 'bench-ingest', argv: ['bench', 'ingest', '--duration', '10s'], stores: ['redis', 'mysql'] },
    { dir: 'bench-ed25519', argv: ['bench', 'ed25519', '--duration', '2s'] },
    { dir: 'bench-ioctl', argv: ['bench', 'ioctl', '--calls', '10000'] },
    { dir: 'bench-sim', argv: ['bench', 'sim', '--tier', 'full', '--max-agents', '1000', '--duration', '60s'] },
    ...simSeeds('sim-standard', 'standard', [1, 2, 3, 4, 5], ['--duration', '5m']),
    ...simSeeds('sim-gateway-restart', 'gateway-restart', [1, 2, 3, 4, 5], []),
    ...simSeeds('sim-lossy-network', 'lossy-network', [1, 2, 3, 4, 5], []),
    { dir: 'chaos-matrix', argv: ['chaos', 'matrix', '--seeds', '10'] },
  ],
};

export const runSets: readonly RunSet[] = [tiny, paper];

export function runSet(name: string): RunSet | undefined {
  return runSets.find((set) => set.name === name);
}
