import { MemoryCommandJournal, type CommandJournal, type CommandResultBody, type JournalEntry } from '../agent/command-journal.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
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

/**
 * One process lifetime's handle on the durable journal. A crash kills it: the dead process's
 * work still pending on the virtual scheduler (a kernel call answering late, a queued command)
 * would otherwise write into the journal the next run already uses, which no real crash allows.
 * After `kill` every write stays pending for ever, as the dead process's code never continues.
 */
export class IncarnationJournal implements CommandJournal {
  #alive = true;

  constructor(private readonly durable: CommandJournal) {}

  kill(): void {
    this.#alive = false;
  }

  get(commandId: string): JournalEntry | undefined {
    return this.durable.get(commandId);
  }

  entries(): JournalEntry[] {
    return this.durable.entries();
  }

  highestExecutedSeq(): number {
    return this.durable.highestExecutedSeq();
  }

  isSeqDone(seq: number): boolean {
    return this.durable.isSeqDone(seq);
  }

  received(command: SignedCommand): Promise<void> {
    return this.#write(() => this.durable.received(command));
  }

  executing(commandId: string): Promise<void> {
    return this.#write(() => this.durable.executing(commandId));
  }

  finished(commandId: string, result: CommandResultBody): Promise<void> {
    return this.#write(() => this.durable.finished(commandId, result));
  }

  confirmed(commandIds: readonly string[]): Promise<void> {
    return this.#write(() => this.durable.confirmed(commandIds));
  }

  /** The durable journal outlives every process; a run's stop does not close it. */
  async close(): Promise<void> {}

  #write(write: () => Promise<void>): Promise<void> {
    return this.#alive ? write() : new Promise<void>(() => {});
  }
}

/**
 * Reports every call that reaches the kernel, before it runs, with its name (the OTA checkers
 * tell the update's calls apart). `withConfirm` passes the bridge's confirmUpdate through: the
 * update runner confirms a healthy commit with it; the agent core's wrapper has none (its plain
 * EXEC_COMMIT_UPDATE arms no watchdog then), as the recorded trace hashes were made without it.
 */
export function observedKernel(bridge: KernelBridge, onCall: (call: keyof KernelBridge) => void, options: { readonly withConfirm?: boolean } = {}): KernelBridge {
  return {
    backend: bridge.backend,
    pingKernel: (nonce, auth) => { onCall('pingKernel'); return bridge.pingKernel(nonce, auth); },
    lockScreen: (auth) => { onCall('lockScreen'); return bridge.lockScreen(auth); },
    getProcessList: (limit, auth) => { onCall('getProcessList'); return bridge.getProcessList(limit, auth); },
    stageUpdate: (args, auth) => { onCall('stageUpdate'); return bridge.stageUpdate(args, auth); },
    commitUpdate: (version, auth, options) => { onCall('commitUpdate'); return bridge.commitUpdate(version, auth, options); },
    rollbackUpdate: (auth) => { onCall('rollbackUpdate'); return bridge.rollbackUpdate(auth); },
    getStatus: (auth) => { onCall('getStatus'); return bridge.getStatus(auth); },
    ...(options.withConfirm !== true || bridge.confirmUpdate === undefined ? {} : { confirmUpdate: (version: string, auth?: Parameters<NonNullable<KernelBridge['confirmUpdate']>>[1]) => { onCall('confirmUpdate'); return bridge.confirmUpdate!(version, auth); } }),
    close: () => bridge.close(),
  };
}
