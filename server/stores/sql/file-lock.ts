import { open, readFile, rm } from 'node:fs/promises';
import { SdcError } from '../../../core/errors/index.js';

/**
 * An exclusive lock on an embedded database file between processes: sql.js keeps the whole
 * database in memory and saves it whole, so a second process writing the same file would lose
 * the first one's writes (for example `sdc user add` while `sdc serve` runs). The lock file holds
 * the owner's pid; a lock whose process is gone is taken over. Within one process the lock is
 * shared and counted, because the process's own openers are the code's responsibility.
 */
export interface FileLock {
  release(): Promise<void>;
}

const heldInThisProcess = new Map<string, number>();

export async function acquireFileLock(path: string): Promise<FileLock> {
  const lockPath = `${path}.lock`;
  const held = heldInThisProcess.get(lockPath);
  if (held !== undefined) {
    heldInThisProcess.set(lockPath, held + 1);
    return releaser(lockPath);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      heldInThisProcess.set(lockPath, 1);
      return releaser(lockPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new SdcError('STORE_UNAVAILABLE', `cannot create ${lockPath}: ${(error as Error).message}`, {}, { cause: error });
      }
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && processExists(owner)) {
        throw new SdcError('STORE_LOCKED', `${path} is in use by process ${owner} (stop it first, or use MySQL to share the database)`, { pid: owner });
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new SdcError('STORE_LOCKED', `${path} is locked and the lock could not be taken over`);
}

function releaser(lockPath: string): FileLock {
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      const count = (heldInThisProcess.get(lockPath) ?? 1) - 1;
      if (count > 0) {
        heldInThisProcess.set(lockPath, count);
        return;
      }
      heldInThisProcess.delete(lockPath);
      await rm(lockPath, { force: true });
    },
  };
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
