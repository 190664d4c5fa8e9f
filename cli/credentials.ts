import { lstat, mkdir, open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import type { CliIo } from './command.js';
import { ownerOnlyMode, permissionBits } from './secret-file.js';

/**
 * The stored login of `sdc login` (fleetctl's model): the server, its CA (PEM text, so a moved
 * file does not break the login) and the JWT, never the password. One 0600 file in a 0700
 * directory: $XDG_CONFIG_HOME/sdc/credentials.json, else ~/.config/sdc/credentials.json;
 * SDC_CREDENTIALS names another file (tests, several servers).
 */
export interface StoredLogin {
  server: string;
  ca_pem: string;
  name: string;
  role: string;
  token: string;
  expires_at_ms: number;
}

/** A CA bundle and a JWT are a few KiB; anything larger is not our file. */
const credentialsBytesMax = 256 * 1024;

export function credentialsPath(env: CliIo['env']): string {
  if (env.SDC_CREDENTIALS) return env.SDC_CREDENTIALS;
  const configHome = env.XDG_CONFIG_HOME || (env.HOME ? join(env.HOME, '.config') : undefined);
  if (configHome === undefined) throw new SdcError('CLI_USAGE', 'set HOME, XDG_CONFIG_HOME or SDC_CREDENTIALS: there is nowhere to keep the login');
  return join(configHome, 'sdc', 'credentials.json');
}

export async function saveLogin(env: CliIo['env'], login: StoredLogin): Promise<string> {
  const path = credentialsPath(env);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Written whole to a private temporary file (random name, created exclusively: a symlink planted
  // at a guessable name is never followed), then renamed: never a half-written or readable token.
  await writeFileAtomic(path, JSON.stringify(login, null, 2) + '\n', { mode: privateFileMode });
  return path;
}

function isStoredLogin(value: unknown): value is StoredLogin {
  const v = value as Record<string, unknown> | null;
  return typeof v === 'object' && v !== null && typeof v.server === 'string' && typeof v.ca_pem === 'string'
    && typeof v.token === 'string' && typeof v.name === 'string' && typeof v.role === 'string' && typeof v.expires_at_ms === 'number';
}

/**
 * The stored login, or CLI_INPUT saying how to log in (none, unreadable or expired). A file that
 * group or others may read or write is refused (CLI_SECRET_FILE_PERMISSIONS), as the passphrase
 * files are: `sdc login` writes it 0600, so another mode means someone changed it, and the token
 * in it is a bearer credential (review h2, finding 7). Its size is checked before it is read.
 */
export async function loadLogin(env: CliIo['env'], nowMs: number): Promise<StoredLogin> {
  const path = credentialsPath(env);
  let text: string | undefined;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    throw new SdcError('CLI_INPUT', 'not logged in: run sdc login --server URL --name NAME', { path });
  }
  try {
    const info = await handle.stat();
    if (!ownerOnlyMode(info.mode)) {
      throw new SdcError('CLI_SECRET_FILE_PERMISSIONS', `the stored login ${path} has mode ${permissionBits(info.mode)}: group or others may read it; run chmod 600 on it (or sdc logout, then sdc login)`, { path });
    }
    // Larger than any login we write: not our file, and not read into memory.
    if (info.isFile() && info.size <= credentialsBytesMax) text = await handle.readFile('utf8');
  } catch (error) {
    if (SdcError.is(error)) throw error;
    text = undefined;
  } finally {
    await handle.close();
  }
  let parsed: unknown;
  try {
    parsed = text !== undefined && text.length <= credentialsBytesMax ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!isStoredLogin(parsed)) throw new SdcError('CLI_INPUT', 'the stored login is not readable: run sdc login again', { path });
  if (parsed.expires_at_ms <= nowMs) throw new SdcError('CLI_INPUT', `the login to ${parsed.server} expired: run sdc login again`, { path });
  return parsed;
}

/** Removes the stored login; true when there was one. */
export async function removeLogin(env: CliIo['env']): Promise<boolean> {
  const path = credentialsPath(env);
  try {
    await lstat(path); // whatever its mode or size: logging out removes it
  } catch {
    return false;
  }
  await rm(path, { force: true });
  return true;
}
