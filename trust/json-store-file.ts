import { readFile } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';

/**
 * What trust/'s JSON file stores (pairing tokens, revocations) share when they open their file:
 * a missing file is a new, empty store; a file that is not a version-1 JSON object of its kind
 * is TRUST_STORE_CORRUPT naming the file, never a crash or a silently empty store.
 */

/** The file's text, or undefined when it does not exist yet. Any other read error propagates. */
export async function readStoreFileIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** TRUST_STORE_CORRUPT naming the file and what is wrong with it. */
export function storeCorrupt(path: string, why: string): SdcError {
  return new SdcError('TRUST_STORE_CORRUPT', `${path}: ${why}`);
}

/** The file's top-level object; TRUST_STORE_CORRUPT unless it is JSON with `version: 1` (`what` names the kind of file). */
export function parseStoreFile(text: string, path: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw storeCorrupt(path, 'not valid JSON');
  }
  const file = value as Record<string, unknown> | null;
  if (typeof file !== 'object' || file === null || Array.isArray(file) || file.version !== 1) throw storeCorrupt(path, `not a version 1 ${what}`);
  return file;
}
