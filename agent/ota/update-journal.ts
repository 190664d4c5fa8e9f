import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import type { ExecutionState } from '../../core/ota/execution-machine.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';

/**
 * The agent's OTA journal: the one execution it works on, the step it is at, the kernel call it
 * is about to make (`intent`, written before the call), and every report it sent, so that after
 * a crash at any point it knows whether to resume, to ask the kernel what happened, or to roll
 * back, and can send the control plane its reports again. One file, replaced atomically.
 */
export interface UpdateJournalEntry {
  readonly executionId: string;
  readonly notice: MessageBody<'OTA_NOTICE'>;
  /** The device-side state, named as the execution table names them. */
  readonly state: ExecutionState;
  /** The kernel call about to be made (journaled before it), cleared when its outcome is journaled. */
  readonly intent: 'stage' | 'commit' | 'rollback' | null;
  readonly cancelRequested: boolean;
  /** What was approved: the target's version label, path in the target directory, release counter, whether it reboots. */
  readonly approved: { readonly version: string; readonly file: string; readonly releaseCounter: number; readonly rebootRequired: boolean } | null;
  readonly reports: readonly MessageBody<'OTA_REPORT'>[];
}

export interface UpdateJournalState {
  readonly current: UpdateJournalEntry | null;
  /** The highest release counter this device ever installed (kept across updates and rollbacks): checkUpdate's floor. */
  readonly installedReleaseCounter: number;
}

export interface UpdateJournal {
  load(): Promise<UpdateJournalState>;
  save(state: UpdateJournalState): Promise<void>;
}

/** Reports kept per execution: a full update sends about a dozen. */
export const updateJournalLimits = { reportsMax: 64, fileBytesMax: 256 * 1024 } as const;

export function fileUpdateJournal(dir: string): UpdateJournal {
  const path = join(dir, 'ota', 'journal.json');
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { current: null, installedReleaseCounter: 0 };
        throw new SdcError('AGENT_JOURNAL_CORRUPT', `OTA journal unreadable: ${(error as Error).message}`);
      }
      const value = parseStrictJson(text, { frameBytesMax: updateJournalLimits.fileBytesMax }) as unknown as UpdateJournalState;
      if (value === null || typeof value !== 'object' || typeof value.installedReleaseCounter !== 'number') throw new SdcError('AGENT_JOURNAL_CORRUPT', 'OTA journal is malformed');
      return value;
    },
    async save(state) {
      await ensurePrivateDirectory(join(dir, 'ota'));
      await writeFileAtomic(path, JSON.stringify(state), { mode: privateFileMode });
    },
  };
}

/**
 * The journal in memory (tests; the simulator's devices, whose journal outlives their agent's
 * crashes as the file does). `keepHistory` (default true, for tests) keeps every saved state in
 * `saved`; the simulator keeps only the latest.
 */
export function memoryUpdateJournal(options: { readonly keepHistory?: boolean } = {}): UpdateJournal & { readonly saved: UpdateJournalState[] } {
  const saved: UpdateJournalState[] = [];
  const keepHistory = options.keepHistory ?? true;
  let state: UpdateJournalState = { current: null, installedReleaseCounter: 0 };
  return {
    saved,
    async load() { return structuredClone(state); },
    async save(next) {
      state = structuredClone(next);
      if (keepHistory) saved.push(state);
    },
  };
}
