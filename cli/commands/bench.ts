import type { CommandGroup } from '../command.js';
import { withBenchSuiteOptions } from '../bench-suite.js';
import { ed25519BenchCommand } from './bench-ed25519.js';
import { simBenchCommand } from './bench-sim.js';
import { roundtripBenchCommand } from './bench-roundtrip.js';
import { ioctlBenchCommand } from './bench-ioctl.js';
import { busBenchCommand } from './bench-bus.js';
import { ingestBenchCommand } from './bench-ingest.js';
import { apiBenchCommand } from './bench-api.js';
import { agentsBenchCommand } from './bench-agents.js';
import { connectionsBenchCommand, reconnectBenchCommand } from './bench-connections.js';
import { enrollBenchCommand } from './bench-enroll.js';

/** `sdc bench <name>`: each benchmark module exports its Command; add one import and one entry. */
export const benchGroup: CommandGroup = {
  name: 'bench',
  summary: 'Benchmarks with report-ready output (tables or --json)',
  // --repeat, --json, --out and the environment block are added to every bench here (cli/bench-suite.ts).
  commands: [
    ed25519BenchCommand,
    simBenchCommand,
    roundtripBenchCommand,
    ioctlBenchCommand,
    busBenchCommand,
    ingestBenchCommand,
    apiBenchCommand,
    agentsBenchCommand,
    connectionsBenchCommand,
    reconnectBenchCommand,
    enrollBenchCommand,
  ].map(withBenchSuiteOptions),
};
