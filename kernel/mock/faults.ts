/**
 * Faults the mock kernel can inject, each a named option (tigerbeetle's packet simulator idea).
 * Probabilities are integer ratios drawn from an injected RandomSource, and delays run on an
 * injected Scheduler, so a simulator run replays exactly from its seed.
 */
import type { RandomSource } from '../../core/ports/ports.js';
import type { KernelStatusName, OpcodeName } from '../generated/contract.js';

/** numerator / denominator, 0 <= numerator <= denominator; omitted means always. */
export interface FaultRatio {
  numerator: number;
  denominator: number;
}

interface FaultBase {
  /** Only calls for this opcode; omitted means every opcode. */
  opcode?: OpcodeName;
  ratio?: FaultRatio;
}

/** An authenticated request is answered with this status instead of being executed (counter consumed). */
export interface StatusFault extends FaultBase {
  kind: 'status';
  status: Exclude<KernelStatusName, 'OK' | 'BAD_HANDLE'>;
}

/** The response is delivered delayMs later on the injected scheduler. */
export interface LatencyFault extends FaultBase {
  kind: 'latency';
  delayMs: number;
}

/** The call never completes; it ends only when the caller's AbortSignal fires (timeout or cancel). */
export interface HangFault extends FaultBase {
  kind: 'hang';
}

export type KernelFault = StatusFault | LatencyFault | HangFault;

export function validateFault(fault: KernelFault): void {
  const ratio = fault.ratio;
  if (ratio && !(Number.isSafeInteger(ratio.numerator) && Number.isSafeInteger(ratio.denominator) &&
      ratio.denominator > 0 && ratio.numerator >= 0 && ratio.numerator <= ratio.denominator)) {
    throw new RangeError(`fault ratio ${ratio.numerator}/${ratio.denominator} is not an integer ratio in [0, 1]`);
  }
  if (fault.kind === 'latency' && !(Number.isFinite(fault.delayMs) && fault.delayMs >= 0)) {
    throw new RangeError('latency fault delayMs must be a finite number >= 0');
  }
}

/** Whether `fault` fires for this call; draws from `random` only when a ratio is set. */
export function faultFires(fault: KernelFault, opcode: OpcodeName | undefined, random: RandomSource): boolean {
  // Faults model a device failing its operations; provisioning is enrollment set-up, and a fault
  // there would leave every later privileged command NOT_PROVISIONED instead of failing one.
  if (opcode === 'PROVISION_COMMAND_KEYS') return false;
  if (fault.opcode !== undefined && fault.opcode !== opcode) return false;
  if (!fault.ratio) return true;
  return random.intBelow(fault.ratio.denominator) < fault.ratio.numerator;
}
