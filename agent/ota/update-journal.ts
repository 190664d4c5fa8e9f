import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { executionStates, type ExecutionState } from '../../core/ota/execution-machine.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { defaultProtocolLimits } from '../../core/protocol/limits.js';
import { validateMessageBody, validateOpcodeArgs } from '../../core/protocol/messages/validate.js';
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

/**
 * Reports kept per execution: a full update sends about a dozen. The journal is read with its own
 * limits, not a frame's: it holds a notice one level below where a frame holds it (state > current >
 * notice, against envelope > body), so a notice a frame may carry fits with room to spare; and the
 * floor file is a few bytes.
 */
export const updateJournalLimits = {
  reportsMax: 64, fileBytesMax: 256 * 1024, depthMax: defaultProtocolLimits.depthMax + 4, floorFileBytesMax: 1024,
} as const;

/**
 * The journal in files: `ota/journal.json`, and the anti-rollback floor on its own in `ota/floor.json`
 * (the installed release counter; written before the journal whenever it rises, both atomically),
 * so that a journal an operator must remove does not take the floor with it: load takes the higher
 * of the two. A journal or floor that does not load is AGENT_OTA_JOURNAL_CORRUPT (the parser's or
 * the shape check's code in `details.cause`), and from then on this journal refuses every save
 * with the same error: what it could not read is never overwritten (review h1 (OTA), findings 1 and 11).
 * A save before any load loads first, for the same reason.
 */
export function fileUpdateJournal(dir: string): UpdateJournal {
  const path = join(dir, 'ota', 'journal.json');
  const floorPath = join(dir, 'ota', 'floor.json');
  /** The floor on disk as last read or written; undefined until loaded. */
  let floorOnDisk: number | undefined;
  let loadFailure: SdcError | undefined;
  const load = async (): Promise<UpdateJournalState> => {
    try {
      const floor = await readFloor(floorPath);
      const text = await readText(path, 'journal');
      const state = text === undefined ? { current: null, installedReleaseCounter: 0 } : parseJournal(text);
      floorOnDisk = floor;
      loadFailure = undefined;
      return { ...state, installedReleaseCounter: Math.max(state.installedReleaseCounter, floor) };
    } catch (error) {
      loadFailure = SdcError.is(error, 'AGENT_OTA_JOURNAL_CORRUPT') ? error : corrupt('journal', error);
      throw loadFailure;
    }
  };
  return {
    load,
    async save(state) {
      if (floorOnDisk === undefined && loadFailure === undefined) await load();
      if (loadFailure !== undefined) throw loadFailure;
      await ensurePrivateDirectory(join(dir, 'ota'));
      if (state.installedReleaseCounter > floorOnDisk!) {
        await writeFileAtomic(floorPath, JSON.stringify({ installed_release_counter: state.installedReleaseCounter }), { mode: privateFileMode });
        floorOnDisk = state.installedReleaseCounter;
      }
      await writeFileAtomic(path, JSON.stringify({ ...state, installedReleaseCounter: Math.max(state.installedReleaseCounter, floorOnDisk!) }), { mode: privateFileMode });
    },
  };
}

async function readText(path: string, what: 'journal' | 'floor'): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw corrupt(what, error);
  }
}

async function readFloor(path: string): Promise<number> {
  const text = await readText(path, 'floor');
  if (text === undefined) return 0;
  let value: unknown;
  try {
    value = parseStrictJson(text, { frameBytesMax: updateJournalLimits.floorFileBytesMax, depthMax: 1 });
  } catch (error) {
    throw corrupt('floor', error);
  }
  const counter = (value as { installed_release_counter?: unknown } | null)?.installed_release_counter;
  if (!isCounter(counter)) throw corrupt('floor', new SdcError('PROTO_SCHEMA_INVALID', 'installed_release_counter is not a non-negative integer'));
  return counter;
}

/** The journal's text, parsed within the journal's limits and checked against its shape. */
export function parseJournal(text: string): UpdateJournalState {
  let value: unknown;
  try {
    value = parseStrictJson(text, { frameBytesMax: updateJournalLimits.fileBytesMax, depthMax: updateJournalLimits.depthMax });
  } catch (error) {
    throw corrupt('journal', error);
  }
  try {
    return checkJournalState(value);
  } catch (error) {
    throw corrupt('journal', error);
  }
}

const intents: readonly unknown[] = ['stage', 'commit', 'rollback', null];
/** The opcode each kernel command of an update's notice must have: the journal's shape check and the runner's notice check. */
export const updateCommandOpcodes = Object.freeze({ stage: 'EXEC_STAGE_UPDATE', commit: 'EXEC_COMMIT_UPDATE', rollback: 'EXEC_ROLLBACK_UPDATE' } as const);

/**
 * The journal's shape: what the runner reads back is what it wrote, every notice and report as
 * their message schemas have them, and each kernel command's arguments as its opcode's schema
 * (the notice schema leaves them open). Throws PROTO_SCHEMA_INVALID naming the first problem.
 */
function checkJournalState(value: unknown): UpdateJournalState {
  const shape = (ok: boolean, what: string): void => {
    if (!ok) throw new SdcError('PROTO_SCHEMA_INVALID', `OTA journal: ${what}`, { path: what });
  };
  const state = value as { current?: unknown; installedReleaseCounter?: unknown } | null;
  shape(typeof state === 'object' && state !== null && !Array.isArray(state), 'not an object');
  shape(isCounter(state!.installedReleaseCounter), 'installedReleaseCounter');
  const current = state!.current as Record<string, unknown> | null | undefined;
  shape(current !== undefined, 'current');
  if (current === null) return { current: null, installedReleaseCounter: state!.installedReleaseCounter as number };
  shape(typeof current === 'object' && !Array.isArray(current), 'current');
  shape(typeof current!['executionId'] === 'string', 'current.executionId');
  const notice = validateMessageBody('OTA_NOTICE', current!['notice']);
  shape(notice.execution_id === current!['executionId'], 'current.notice.execution_id');
  for (const step of ['stage', 'commit', 'rollback'] as const) {
    const command = notice.kernel_commands[step];
    shape(command.opcode === updateCommandOpcodes[step], `current.notice.kernel_commands.${step}.opcode`);
    validateOpcodeArgs(command.opcode, command.args);
  }
  shape((executionStates as readonly unknown[]).includes(current!['state']), 'current.state');
  shape(intents.includes(current!['intent']), 'current.intent');
  shape(typeof current!['cancelRequested'] === 'boolean', 'current.cancelRequested');
  const approved = current!['approved'] as Record<string, unknown> | null | undefined;
  shape(approved === null || (typeof approved === 'object' && approved !== undefined && typeof approved['version'] === 'string' && typeof approved['file'] === 'string'
    && isCounter(approved['releaseCounter']) && typeof approved['rebootRequired'] === 'boolean'), 'current.approved');
  const reports = current!['reports'];
  shape(Array.isArray(reports) && reports.length <= updateJournalLimits.reportsMax, 'current.reports');
  for (const report of reports as unknown[]) validateMessageBody('OTA_REPORT', report);
  return value as UpdateJournalState;
}

function isCounter(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function corrupt(what: 'journal' | 'floor', error: unknown): SdcError {
  const cause = SdcError.is(error) ? error.code : (error as NodeJS.ErrnoException)?.code ?? 'unknown';
  const file = what === 'journal' ? 'ota/journal.json' : 'ota/floor.json';
  return new SdcError('AGENT_OTA_JOURNAL_CORRUPT', `OTA ${what} ${file} does not load (${cause}): ${(error as Error)?.message ?? String(error)}`, { cause, file });
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
