import { MemoryCommandJournal } from '../agent/command-journal.js';
import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';

/**
 * The two taps the execution checker needs on a simulated agent, shared by the virtual-time
 * world (sim/run.ts, sim/sim-agent.ts) and the --real workers (sim/real/worker-fleet.ts).
 */

/** A journal that tells the execution checker which command the kernel's next call belongs to. */
export class ObservedJournal extends MemoryCommandJournal {
  constructor(private readonly onExecuting: (commandId: string) => void) {
    super();
  }

  override async executing(commandId: string): Promise<void> {
    await super.executing(commandId);
    this.onExecuting(commandId);
  }
}

/** Reports every call that reaches the kernel, before it runs. */
export function observedKernel(bridge: KernelBridge, onCall: () => void): KernelBridge {
  return {
    backend: bridge.backend,
    pingKernel: (nonce) => { onCall(); return bridge.pingKernel(nonce); },
    lockScreen: () => { onCall(); return bridge.lockScreen(); },
    getProcessList: (limit) => { onCall(); return bridge.getProcessList(limit); },
    stageUpdate: (args) => { onCall(); return bridge.stageUpdate(args); },
    commitUpdate: (version) => { onCall(); return bridge.commitUpdate(version); },
    rollbackUpdate: () => { onCall(); return bridge.rollbackUpdate(); },
    getStatus: () => { onCall(); return bridge.getStatus(); },
    close: () => bridge.close(),
  };
}
