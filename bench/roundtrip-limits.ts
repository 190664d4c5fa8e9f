/**
 * Bounds of `sdc bench roundtrip`, apart from bench/roundtrip.ts so that the CLI's help and option
 * checks read them without loading the whole deployment that the bench runs.
 */
export const roundtripLimits = Object.freeze({ agentsMax: 5_000, commandsPerAgentMax: 1_000 });
