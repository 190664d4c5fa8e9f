import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { access, chmod, link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Owner read/write only: private keys and trust stores. */
export const privateFileMode = 0o600;
/** Owner only: the directories that hold them. */
export const privateDirectoryMode = 0o700;

/**
 * Replaces `path` with `data` so a reader sees either the old or the new content, never a torn
 * file: write a temp file in the same directory (created exclusively, with `mode` from the first
 * byte, so a secret is never briefly world-readable), fsync it, then rename over the target.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode: number }): Promise<void> {
  const directory = dirname(path);
  const temporary = temporaryPathBeside(path);
  try {
    await writeSyncedTemporary(temporary, data, options.mode);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await syncDirectory(directory);
}

/** A random name in the target's own directory (a rename or link never crosses file systems). */
function temporaryPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
}

/** Creates `temporary` exclusively with exactly `mode`, writes `data` and fsyncs it. */
async function writeSyncedTemporary(temporary: string, data: string | Uint8Array, mode: number): Promise<void> {
  const handle = await open(temporary, 'wx', mode);
  try {
    await handle.writeFile(data);
    // open() applies the umask; chmod makes the mode exact either way.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates `path` holding `data` only if nothing exists there: true if this call created it, false
 * if the name was taken (the caller reads what is there). Of several processes racing to create
 * one file, exactly one wins, and no reader ever sees it empty or half written: the data is
 * written and fsynced under a temp name, then hard-linked to `path` (link never replaces a name).
 */
export async function createFileExclusive(path: string, data: string | Uint8Array, options: { mode: number }): Promise<boolean> {
  const directory = dirname(path);
  const temporary = temporaryPathBeside(path);
  try {
    await writeSyncedTemporary(temporary, data, options.mode);
    try {
      await link(temporary, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
  await syncDirectory(directory);
  return true;
}

/**
 * writeFileAtomic for synchronous callers (kernel key provisioning runs inside a synchronous
 * open): the same temp file, exact mode, fsync, rename and best-effort directory sync.
 */
export function writeFileAtomicSync(path: string, data: Uint8Array, options: { mode: number }): void {
  const directory = dirname(path);
  const temporary = temporaryPathBeside(path);
  const fd = openSync(temporary, 'wx', options.mode);
  try {
    try {
      for (let offset = 0; offset < data.length;) offset += writeSync(fd, data, offset);
      // openSync applies the umask; fchmod makes the mode exact either way.
      fchmodSync(fd, options.mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
  syncDirectorySync(directory);
}

/** Creates `path` (and missing parents) and sets `path` itself to owner-only access. */
export async function ensurePrivateDirectory(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: privateDirectoryMode });
  await chmod(path, privateDirectoryMode);
}

/** Makes the rename durable; some platforms refuse to fsync a directory, which only weakens durability. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle;
  try {
    handle = await open(directory, 'r');
    await handle.sync();
  } catch {
    // Durability best effort only (see above); atomicity comes from rename.
  } finally {
    await handle?.close();
  }
}

/** syncDirectory for synchronous callers: best effort the same way (Windows refuses to open or fsync a directory). */
export function syncDirectorySync(directory: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(directory, 'r');
    fsyncSync(fd);
  } catch {
    // Durability best effort only; atomicity comes from rename.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** True when `path` exists (any type); false on ENOENT and on any other error reading it. */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
