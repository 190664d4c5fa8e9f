import { readFile, stat } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';

/** A secret file holds one line; anything larger is the wrong file. */
export const secretFileBytesMax = 4096;

export interface ReadSecretFileOptions {
  path: string;
  /** How the refusals name the file, e.g. `MySQL password file`. */
  what: string;
  /**
   * Refuse a file that group or others may read or write (CLI_SECRET_FILE_PERMISSIONS), as ssh does
   * for keys. For the root key passphrase, which the operator makes by hand. Not for store passwords:
   * Docker and Kubernetes mount their secrets with modes of their own (0444, 0644) that we do not choose.
   */
  privateModeRequired: boolean;
}

/**
 * The one line of a secret file (a passphrase or a store password), so that a secret is never a
 * command-line argument: those are visible to every user of the machine (ps, /proc/PID/cmdline)
 * and in a container's recorded configuration. The newline an editor or `echo` leaves is not part
 * of the secret. Refusals name the file, never its contents.
 */
export async function readSecretFile(options: ReadSecretFileOptions): Promise<string> {
  const { path, what } = options;
  let text: string;
  try {
    const info = await stat(path);
    if (options.privateModeRequired) requirePrivateSecretMode(options, info.mode);
    if (info.size > secretFileBytesMax) throw new SdcError('CLI_INPUT', `the ${what} ${path} is larger than ${secretFileBytesMax} bytes`, { path });
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (SdcError.is(error)) throw error;
    throw new SdcError('CLI_INPUT', `cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { path });
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret.length === 0 || /[\r\n]/.test(secret)) throw new SdcError('CLI_INPUT', `the ${what} ${path} must hold one non-empty line`, { path });
  return secret;
}

/**
 * Whether a file of this mode is owner-only (0600, 0400): the test every private file the CLI reads
 * passes (secret files, the stored login, approval signing keys). Always true on Windows, which
 * has no POSIX modes.
 */
export function ownerOnlyMode(mode: number): boolean {
  return process.platform === 'win32' || (mode & 0o077) === 0;
}

/** The octal permission bits a refusal names. */
export function permissionBits(mode: number): string {
  return (mode & 0o777).toString(8);
}

/** Owner-only (0600 or 0400). Not on Windows, which has no POSIX modes. */
function requirePrivateSecretMode(options: ReadSecretFileOptions, mode: number): void {
  if (ownerOnlyMode(mode)) return;
  const octal = permissionBits(mode);
  throw new SdcError('CLI_SECRET_FILE_PERMISSIONS', `the ${options.what} ${options.path} has mode ${octal}: group or others may read it; run chmod 600 on it`, { path: options.path });
}
