import { spawn } from 'node:child_process';
import { getHeapStatistics } from 'node:v8';

/**
 * The V8 heap a full-tier run needs, and a restart of the CLI with a larger limit when the
 * process has less. The full tier holds every agent, session and store in one process: about
 * 35 KiB of heap per agent once all are connected, plus what grows with virtual time (the
 * embedded bus's streams, bounded by their maxLen, and the command bookkeeping), measured in
 * docs/benchmarks.md ("100,000 agents for 10 virtual minutes"). Node's default limit (about
 * 4 GiB on a 64-bit machine with this much memory) is reached near 80,000 agents; a run that
 * reaches it dies with "JavaScript heap out of memory" after minutes of start-up, so the limit
 * is raised before the run starts instead.
 */
export const heapBaseMiB = 512;
export const heapKiBPerAgent = 48;
/** Bytes of heap per agent-second of virtual time (telemetry and event stream entries kept up to the streams' bounds). */
export const heapBytesPerAgentSecond = 40;
/** Never asked for more than this (MiB): a larger fleet or duration is the model tier's (--tier model). */
export const heapMiBMax = 16_384;
/** Set in the restarted child, so it never restarts itself again. */
export const heapRelaunchEnv = 'SDC_SIM_HEAP_RELAUNCHED';

/** The old-space limit (MiB) a full-tier run of `agents` for `safetyMs` of virtual time needs, capped at heapMiBMax. */
export function fullTierHeapMiB(agents: number, safetyMs: number): number {
  const bytes = agents * heapKiBPerAgent * 1024 + agents * (safetyMs / 1000) * heapBytesPerAgentSecond;
  return Math.min(heapMiBMax, heapBaseMiB + Math.ceil(bytes / 1_048_576));
}

/**
 * The arguments of the restarted CLI (node's own, the larger limit, the script and the same
 * command line), or undefined when the current limit is enough or this process is already the
 * restarted one. A --max-old-space-size given by the user is replaced, not kept beside ours.
 */
export function heapRelaunchArgs(parts: {
  neededMiB: number; limitMiB: number; execArgv: readonly string[]; argv: readonly string[]; env: Readonly<Record<string, string | undefined>>;
}): string[] | undefined {
  if (parts.env[heapRelaunchEnv] === '1' || parts.limitMiB >= parts.neededMiB) return undefined;
  const script = parts.argv[1];
  if (script === undefined) return undefined;
  const nodeArgs = parts.execArgv.filter((arg) => !/^--max[-_]old[-_]space[-_]size(=|$)/.test(arg));
  return [...nodeArgs, `--max-old-space-size=${parts.neededMiB}`, script, ...parts.argv.slice(2)];
}

/** The current process's old-space limit in MiB. */
export function currentHeapLimitMiB(): number {
  return Math.floor(getHeapStatistics().heap_size_limit / 1_048_576);
}

/**
 * Runs the CLI again with `args` (heapRelaunchArgs) with the same stdio and environment, and
 * resolves with its exit code; a signal that ends it is passed on as 128 + its number would be.
 */
export function relaunchWithHeap(args: readonly string[], note: (line: string) => void): Promise<number> {
  note(`sdc sim: restarting with ${args.find((arg) => arg.startsWith('--max-old-space-size='))} (the fleet needs more heap than this process has)\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit', env: { ...process.env, [heapRelaunchEnv]: '1' } });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128 + (signalNumber(signal) ?? 1))));
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return ({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal];
}
