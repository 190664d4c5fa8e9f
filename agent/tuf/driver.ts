import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import type { StepResult, TufStep, Workflow } from '../../core/tuf/updater.js';
import type { BodyLimits } from './bounded-body.js';
import type { TufFetcher } from './http-fetcher.js';

/**
 * Runs a TUF workflow (core/tuf/updater.ts) against real I/O: each step the generator yields is
 * performed here and its result handed back. Metadata is stored with the exact bytes received,
 * under the non-versioned names the workflow gives (root.json, timestamp.json, ...), and nothing
 * else ending in .json is written to the metadata directory (the conformance suite counts them).
 */

/** Where the workflow's files live; tests pass in-memory stores. */
export interface TufFileStore {
  read(fileName: string): Promise<Uint8Array | undefined>;
  write(fileName: string, bytes: Uint8Array): Promise<void>;
  delete(fileName: string): Promise<void>;
}

export interface TufDriverIo {
  readonly metadata: TufFileStore;
  readonly targets?: TufFileStore;
  readonly fetcher: TufFetcher;
  /** Silence and whole-download limits for every fetch; the byte limit comes from each step. */
  readonly timeouts: { readonly idleTimeoutMs: number; readonly totalTimeoutMs: number };
}

/** Defaults: a repository silent for 30 s, or a single file taking 5 minutes, is treated as a slow-retrieval attack. */
export const defaultTufTimeouts = { idleTimeoutMs: 30_000, totalTimeoutMs: 300_000 } as const;

/**
 * The slowest average rate a fetch may keep once its file is too large for the fixed total limit:
 * a fetch of at most L bytes gets max(totalTimeoutMs, L at this rate). A fixed 5 minutes made an
 * artifact of more than about 5 minutes' worth (128 MiB needs 440 KiB/s) impossible on a slow
 * link by the targets route, which a hostile gateway can force by rewriting artifact_url (review
 * h1 of the OTA path, finding 4). Metadata (at most 5 MB by default: 153 s) keeps the 5 minutes;
 * the idle limit is unchanged, and L is the length the signed metadata gives the file.
 */
export const tufSlowestBytesPerSecond = 32 * 1024;

/** The whole-download limit for a fetch of at most `bytesMax` bytes (tufSlowestBytesPerSecond). */
export function totalTimeoutForBytes(bytesMax: number, totalTimeoutMs: number): number {
  return Math.max(totalTimeoutMs, Math.ceil((bytesMax / tufSlowestBytesPerSecond) * 1_000));
}

/** Steps one workflow may take: the workflow's own loops are bounded, this bounds a bug in them. */
const stepsMax = 100_000;

export async function runTufWorkflow<T>(workflow: Workflow<T>, io: TufDriverIo): Promise<T> {
  let next = workflow.next();
  for (let steps = 0; !next.done; steps++) {
    if (steps >= stepsMax) throw new SdcError('PROTO_INVALID_ARGUMENT', `a TUF workflow took more than ${stepsMax} steps`);
    const result = await perform(next.value, io);
    next = workflow.next(result);
  }
  return next.value;
}

async function perform(step: TufStep, io: TufDriverIo): Promise<StepResult> {
  switch (step.kind) {
    case 'read-metadata': return io.metadata.read(step.fileName);
    case 'write-metadata': await io.metadata.write(step.fileName, step.bytes); return undefined;
    case 'delete-metadata': await io.metadata.delete(step.fileName); return undefined;
    case 'read-target': return targetStore(io).read(step.fileName);
    case 'write-target': await targetStore(io).write(step.fileName, step.bytes); return undefined;
    case 'fetch': {
      const limits: BodyLimits = { bytesMax: step.bytesMax, idleTimeoutMs: io.timeouts.idleTimeoutMs, totalTimeoutMs: totalTimeoutForBytes(step.bytesMax, io.timeouts.totalTimeoutMs) };
      return io.fetcher.fetch(step.url, limits, step.purpose);
    }
  }
}

function targetStore(io: TufDriverIo): TufFileStore {
  if (io.targets === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'this workflow needs a target directory');
  return io.targets;
}

/** Files must be single names: the workflow quotes role and target names, so a `/` here is a bug or an attack. */
function checkedName(fileName: string): string {
  if (fileName.length === 0 || fileName.includes('/') || fileName.includes('\\') || fileName === '.' || fileName === '..') {
    throw new SdcError('TUF_LOCAL_STORE', `refusing the file name ${JSON.stringify(fileName)}`);
  }
  return fileName;
}

/**
 * A directory as a TufFileStore. Writes go to a temporary name first and are renamed into place,
 * so a crash never leaves a half-written root.json; the temporary name does not end in .json.
 */
export function directoryStore(directory: string): TufFileStore {
  let counter = 0;
  return {
    async read(fileName) {
      try {
        return new Uint8Array(await readFile(join(directory, checkedName(fileName))));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw localStoreError('read', fileName, error);
      }
    },
    async write(fileName, bytes) {
      const path = join(directory, checkedName(fileName));
      const temporary = `${path}.${process.pid}.${counter++}.partial`;
      try {
        await mkdir(directory, { recursive: true });
        await writeFile(temporary, bytes);
        await rename(temporary, path);
      } catch (error) {
        await rm(temporary, { force: true }).catch(() => undefined);
        throw localStoreError('write', fileName, error);
      }
    },
    async delete(fileName) {
      try {
        await rm(join(directory, checkedName(fileName)), { force: true });
      } catch (error) {
        throw localStoreError('delete', fileName, error);
      }
    },
  };
}

function localStoreError(verb: string, fileName: string, error: unknown): SdcError {
  const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return new SdcError('TUF_LOCAL_STORE', `cannot ${verb} ${fileName}: ${reason}`, { file: fileName });
}

/**
 * A TufFileStore in memory (the simulator's devices, tests): bounded to `filesMax` files of at most
 * `fileBytesMax` bytes each (the workflow's own byte limits are below that), TUF_LOCAL_STORE past either.
 */
export function memoryTufStore(limits: { readonly filesMax: number; readonly fileBytesMax: number } = { filesMax: 64, fileBytesMax: 16 * 1024 * 1024 }): TufFileStore {
  const files = new Map<string, Uint8Array>();
  return {
    async read(fileName) {
      return files.get(checkedName(fileName));
    },
    async write(fileName, bytes) {
      const name = checkedName(fileName);
      if (bytes.length > limits.fileBytesMax) throw new SdcError('TUF_LOCAL_STORE', `cannot write ${fileName}: more than ${limits.fileBytesMax} bytes`, { file: fileName });
      if (!files.has(name) && files.size >= limits.filesMax) throw new SdcError('TUF_LOCAL_STORE', `cannot write ${fileName}: more than ${limits.filesMax} files`, { file: fileName });
      files.set(name, bytes);
    },
    async delete(fileName) {
      files.delete(checkedName(fileName));
    },
  };
}
