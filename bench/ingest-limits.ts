/**
 * Defaults and bounds of `sdc bench ingest`, apart from bench/ingest.ts so that the CLI's help and
 * option checks read them without loading the deployment that the bench runs (the CLI's start-up).
 */
export const ingestBenchDefaults = { connections: 200, durationMs: 5_000, warmupMs: 1_500, windowFrames: 2_000 } as const;
export const ingestBenchLimits = { connectionsMax: 10_000, durationMsMax: 120_000, windowFramesMax: 100_000 } as const;
