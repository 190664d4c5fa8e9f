import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { access, chmod, link, mkdir, open, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { basename, dirname, join } from 'node:path';
import { SdcError } from '../core/errors/index.js';

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
 * Where the file system has no hard links (FAT, exFAT, some SMB mounts: link(2) fails EPERM or
 * ENOTSUP), the temp file is renamed into place under a lock directory instead
 * (`createUnderLockDirectory`).
 */
export async function createFileExclusive(path: string, data: string | Uint8Array, options: ExclusiveCreateOptions): Promise<boolean> {
  const directory = dirname(path);
  const temporary = temporaryPathBeside(path);
  const linkFile = options.linkFile ?? link;
  let created: boolean;
  try {
    await writeSyncedTemporary(temporary, data, options.mode);
    try {
      await linkFile(temporary, path);
      created = true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code === undefined || !linkUnsupportedCodes.has(code)) throw error;
      created = await createUnderLockDirectory(path, temporary, options);
    }
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
  if (created) await syncDirectory(directory);
  return created;
}

export interface ExclusiveCreateOptions {
  mode: number;
  /** link(2); replaceable so tests can play a file system without hard links. */
  linkFile?: (existingPath: string, newPath: string) => Promise<void>;
  /** How long the no-hard-link path waits for another creator's lock (default 15 s). */
  lockWaitMs?: number;
  /** How long a waiter must see the same lock unchanged before it takes its creator for dead (default 5 s). */
  lockStaleAfterMs?: number;
}

/** link(2)'s answers where the file system cannot make hard links at all. */
const linkUnsupportedCodes = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);
const lockWaitDefaultMs = 15_000;
/** A creator holds the lock for a stat and a rename (milliseconds); seen this long, it died holding it. */
const lockStaleAfterDefaultMs = 5_000;
const lockPollMs = 20;

/**
 * The no-hard-link path: mkdir is atomic on every file system, so the lock directory
 * `<path>.create-lock` admits one creator at a time; the holder renames its temp file into place
 * only if `path` is still absent. A waiter returns false as soon as `path` exists. A lock left by a
 * creator that died holding it is removed when this waiter has seen the very same lock directory
 * (inode and modification time) for `lockStaleAfterMs` of its own clock: never by comparing the
 * directory's time stamp with this machine's clock, which a file server's skewed clock would make
 * every live lock look stale. A holder takes milliseconds (a stat and a rename), and removes
 * only the lock it made. (A holder stalled longer than that, or two waiters clearing the same
 * stale lock in the same instant, could still both go on: the holder's check before its rename
 * narrows that to two renames within one stat's time.)
 */
async function createUnderLockDirectory(path: string, temporary: string, options: ExclusiveCreateOptions): Promise<boolean> {
  const lock = `${path}.create-lock`;
  const lockWaitMs = options.lockWaitMs ?? lockWaitDefaultMs;
  const lockStaleAfterMs = options.lockStaleAfterMs ?? lockStaleAfterDefaultMs;
  const startedMs = performance.now();
  let seen: { readonly identity: string; readonly sinceMs: number } | undefined;
  for (;;) {
    try {
      await mkdir(lock, { mode: privateDirectoryMode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (await fileExists(path)) return false;
      const identity = await lockIdentity(lock);
      const nowMs = performance.now();
      if (identity === undefined || identity !== seen?.identity) {
        seen = identity === undefined ? undefined : { identity, sinceMs: nowMs };
      } else if (nowMs - seen.sinceMs >= lockStaleAfterMs) {
        if ((await lockIdentity(lock)) === identity) await rmdir(lock).catch(() => undefined);
        seen = undefined;
        continue;
      }
      if (nowMs - startedMs >= lockWaitMs) {
        throw new SdcError('STORE_FILE_CREATE_LOCKED', 'another process holds the lock for creating this file', { path, lock, waitedMs: lockWaitMs });
      }
      await delay(lockPollMs);
      continue;
    }
    const mine = await lockIdentity(lock);
    try {
      if (await fileExists(path)) return false;
      await rename(temporary, path);
      return true;
    } finally {
      if (mine !== undefined && (await lockIdentity(lock)) === mine) await rmdir(lock).catch(() => undefined);
    }
  }
}

/** Which lock directory is there (inode and modification time), or undefined when none is. */
async function lockIdentity(lock: string): Promise<string | undefined> {
  try {
    const info = await stat(lock, { bigint: true });
    return `${info.dev}:${info.ino}:${info.mtimeNs}`;
  } catch {
    return undefined; // gone meanwhile: the next mkdir decides
  }
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

/**
 * Creates `path` (and missing parents) owner-only. The mode of a directory that was there already
 * is never changed: it may be one the caller was only named (`--keys-out /tmp`), and chmod 0700
 * on /tmp takes its sticky bit and every other user's access away. One that group or others may
 * write to is refused (STORE_DIRECTORY_PERMISSIONS) rather than changed: another account could
 * replace or remove the private files put there. A directory others may only read is used as it
 * is: the files themselves are written 0600.
 */
export async function ensurePrivateDirectory(path: string): Promise<void> {
  // mkdir -p answers the first directory it created, or undefined when `path` existed.
  if ((await mkdir(path, { recursive: true, mode: privateDirectoryMode })) !== undefined) {
    // mkdir applied the umask; chmod makes the new directory's mode exact.
    await chmod(path, privateDirectoryMode);
    return;
  }
  if (process.platform === 'win32') return; // no POSIX modes
  const mode = (await stat(path)).mode;
  if ((mode & 0o022) !== 0) {
    throw new SdcError('STORE_DIRECTORY_PERMISSIONS', `${path} has mode ${(mode & 0o7777).toString(8)}: group or others may write to it; name a directory of your own for private files (or chmod 700 it)`, { path });
  }
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
