import { SdcError } from '../core/errors/index.js';
import { bytesFromHex, hexFromBytes } from '../core/crypto/bytes.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import type { OpcodeArgs } from '../core/protocol/messages/opcodes.js';
import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { commandAuthorization } from '../kernel/command/authorization.js';

export interface OpcodeExecutorOptions {
  kernel: KernelBridge;
  /** Where the kernel service finds the artifact of a staged update (it reads files, not URLs). */
  artifactPath: (args: OpcodeArgs<'EXEC_STAGE_UPDATE'>) => string;
  /** Process entries returned at most (default kernelBridgeLimits.processEntriesDefault: a result must fit one frame). */
  processEntriesMax: number;
  /** The delivery's W3C traceparent: the bridge logs the kernel call with its trace id. */
  traceparent?: string;
  /** EXEC_COLLECT_ARTIFACT (agent/ota/artifact-collector.ts): seals and uploads; absent, the opcode fails ARTIFACT_KIND_UNSUPPORTED. */
  collectArtifact?: (command: SignedCommand) => Promise<Record<string, unknown>>;
  /** The health check after a plain EXEC_COMMIT_UPDATE, before the agent confirms it (default: the kernel runs the committed version). */
  healthProbe?: (context: { version: string }) => Promise<boolean>;
}

/**
 * The commit watchdog window of a plain EXEC_COMMIT_UPDATE that names none (docs/kernel-contract.md,
 * "Commit watchdog"). The agent checks health right after the commit (no reboot on this path), so
 * the window only has to outlast that check and an agent restart; 5 min.
 */
export const plainCommitWatchdogMsDefault = 5 * 60_000;

/**
 * Runs a verified command through the kernel bridge and returns the result's `output`. Every
 * value is plain JSON (the kernel's bigints become numbers or decimal strings). Refusals from
 * the bridge propagate as SdcErrors and become a `failed` result.
 * Every call carries the control plane's signed command (`auth`): the kernel verifies it itself,
 * so the agent's own verification is not the only thing between a command and the device.
 */
export async function executeOpcode(command: SignedCommand, options: OpcodeExecutorOptions): Promise<Record<string, unknown>> {
  const { kernel } = options;
  const auth = { ...commandAuthorization(command), ...(options.traceparent === undefined ? {} : { traceparent: options.traceparent }) };
  switch (command.opcode) {
    case 'EXEC_PING_KERNEL': {
      const ping = await kernel.pingKernel(undefined, auth);
      return { contract_version: ping.contractVersion, lock_screen_supported: ping.lockScreenSupported, backend: kernel.backend };
    }
    case 'EXEC_LOCK_SCREEN':
      await kernel.lockScreen(auth);
      return { locked: true };
    case 'EXEC_GET_PROCESS_LIST': {
      const args = command.args as OpcodeArgs<'EXEC_GET_PROCESS_LIST'>;
      const limit = Math.min(args.limit ?? options.processEntriesMax, options.processEntriesMax);
      const list = await kernel.getProcessList(limit, auth);
      return {
        total_count: list.totalCount,
        processes: list.entries.map((p) => ({ pid: p.pid, ppid: p.ppid, rss_kib: jsonInteger(p.rssKib), name: p.name })),
      };
    }
    case 'EXEC_GET_STATUS': {
      const s = await kernel.getStatus(auth);
      return {
        current_version: s.currentVersion, previous_version: s.previousVersion, staged_version: s.stagedVersion,
        last_counter: s.lastCounter.toString(), requests_accepted: jsonInteger(s.requestsAccepted), requests_refused: jsonInteger(s.requestsRefused),
        commits: s.commits, rollbacks: s.rollbacks, stage_failures: s.stageFailures, current_size_bytes: jsonInteger(s.currentSizeBytes),
      };
    }
    case 'EXEC_STAGE_UPDATE': {
      const args = command.args as OpcodeArgs<'EXEC_STAGE_UPDATE'>;
      const sha256 = bytesFromHex(args.sha256, { code: 'PROTO_SCHEMA_INVALID', name: 'sha256', length: 32 });
      const staged = await kernel.stageUpdate({ path: options.artifactPath(args), version: args.version, sha256 }, auth);
      // The kernel checked the digest; the size is the operator's claim, checked here.
      if (staged.sizeBytes !== BigInt(args.size_bytes)) {
        throw new SdcError('AGENT_EXECUTION_FAILED', `staged artifact has ${staged.sizeBytes} bytes, the command says ${args.size_bytes}`);
      }
      return { version: staged.version, size_bytes: jsonInteger(staged.sizeBytes), sha256: hexFromBytes(staged.sha256) };
    }
    case 'EXEC_COMMIT_UPDATE':
      return commitWithWatchdog(command.args as OpcodeArgs<'EXEC_COMMIT_UPDATE'>, auth, options);
    case 'EXEC_ROLLBACK_UPDATE': {
      const slots = await kernel.rollbackUpdate(auth);
      return { current_version: slots.currentVersion, previous_version: slots.previousVersion };
    }
    case 'EXEC_COLLECT_ARTIFACT':
      // Not a kernel call: the agent reads its own logs (or the platform's screen) and uploads them sealed.
      if (options.collectArtifact === undefined) throw new SdcError('ARTIFACT_KIND_UNSUPPORTED', 'this agent uploads no artifacts');
      return options.collectArtifact(command);
  }
}

/**
 * COMMIT on trial: the signed window (or plainCommitWatchdogMsDefault when the command names none
 * and the kernel can be confirmed), then the health check, then CONFIRM. An unhealthy version is
 * not confirmed and the kernel rolls it back when the window runs out; the result says so.
 */
async function commitWithWatchdog(args: OpcodeArgs<'EXEC_COMMIT_UPDATE'>, auth: ReturnType<typeof commandAuthorization>, options: OpcodeExecutorOptions): Promise<Record<string, unknown>> {
  const { kernel } = options;
  const watchdogMs = args.watchdog_ms ?? (kernel.confirmUpdate === undefined ? undefined : plainCommitWatchdogMsDefault);
  const slots = await kernel.commitUpdate(args.version, auth, {
    ...(args.sha256 === undefined ? {} : { sha256: bytesFromHex(args.sha256, { code: 'PROTO_SCHEMA_INVALID', name: 'sha256', length: 32 }) }),
    ...(watchdogMs === undefined ? {} : { watchdogMs }),
  });
  const result = { current_version: slots.currentVersion, previous_version: slots.previousVersion };
  if (kernel.confirmUpdate === undefined || !(await kernel.getStatus()).watchdogArmed) return { ...result, watchdog: 'none' };
  const healthy = slots.currentVersion === args.version && (await (options.healthProbe?.({ version: args.version }) ?? Promise.resolve(true)));
  if (!healthy) return { ...result, watchdog: 'armed', watchdog_ms: watchdogMs ?? 0 };
  await kernel.confirmUpdate(args.version);
  return { ...result, watchdog: 'confirmed' };
}

function jsonInteger(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}
