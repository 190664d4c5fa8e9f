import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import type { TopLevelRole } from '../../core/tuf/metadata.js';
import { ensurePrivateDirectory, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';

/**
 * The highest version of each role this control plane ever published, kept OUTSIDE the database.
 * A database restored from a backup holds lower versions than devices have already seen; the
 * database alone cannot tell, so the repository compares it with this mark at start and before
 * every signature: it never signs or serves a version at or below the mark (devices would refuse
 * it as a rollback and stop updating), and it skips its online roles' versions past the mark.
 * A port, so a deployment of several control planes may keep it in a shared store later.
 */
export type HighWaterMarks = Readonly<Record<TopLevelRole, number>>;

export interface HighWaterStore {
  read(): Promise<HighWaterMarks>;
  /** Raises each role's mark to at least the given version; never lowers one. */
  raise(marks: Partial<HighWaterMarks>): Promise<void>;
}

const none: HighWaterMarks = { root: 0, targets: 0, snapshot: 0, timestamp: 0 };

function merged(current: HighWaterMarks, raise: Partial<HighWaterMarks>): HighWaterMarks {
  const next = { ...current };
  for (const role of Object.keys(next) as TopLevelRole[]) next[role] = Math.max(next[role], raise[role] ?? 0);
  return next;
}

export class MemoryHighWaterStore implements HighWaterStore {
  #marks: HighWaterMarks = none;
  async read(): Promise<HighWaterMarks> { return this.#marks; }
  async raise(marks: Partial<HighWaterMarks>): Promise<void> { this.#marks = merged(this.#marks, marks); }
}

/** `<dataDir>/tuf/high-water.json`, written atomically (a torn file would read as no mark at all). */
export class FileHighWaterStore implements HighWaterStore {
  readonly #path: string;
  #cached: HighWaterMarks | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  async read(): Promise<HighWaterMarks> {
    if (this.#cached !== undefined) return this.#cached;
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return (this.#cached = none);
      throw new SdcError('STORE_CORRUPT', `${this.#path} cannot be read`, { path: this.#path }, { cause: error });
    }
    this.#cached = parseMarks(text, this.#path);
    return this.#cached;
  }

  async raise(marks: Partial<HighWaterMarks>): Promise<void> {
    const current = await this.read();
    const next = merged(current, marks);
    if (Object.keys(next).every((role) => next[role as TopLevelRole] === current[role as TopLevelRole])) return;
    await ensurePrivateDirectory(dirname(this.#path));
    await writeFileAtomic(this.#path, `${JSON.stringify(next)}\n`, { mode: privateFileMode });
    this.#cached = next;
  }
}

function parseMarks(text: string, path: string): HighWaterMarks {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SdcError('STORE_CORRUPT', `${path} is not JSON; restore it or remove it knowingly`, { path }, { cause: error });
  }
  const marks = { ...none };
  for (const role of Object.keys(none) as TopLevelRole[]) {
    const mark = (value as Record<string, unknown>)?.[role];
    if (mark !== undefined && (!Number.isSafeInteger(mark) || (mark as number) < 0)) throw new SdcError('STORE_CORRUPT', `${path}: ${role} is not a version`, { path });
    marks[role] = (mark as number | undefined) ?? 0;
  }
  return marks;
}
