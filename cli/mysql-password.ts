import { readFile } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';
import type { CliIo, ParsedCommandArgs } from './command.js';

/**
 * The MySQL password from a file (a Docker or compose secret, a 0600 file) instead of the URL, so
 * that it is never a command-line argument: those are visible to every user of the machine (ps,
 * /proc/PID/cmdline) and in a container's recorded configuration. The file's path may also come
 * from this variable, so that `docker compose run SERVICE user add ...` inherits it from the service.
 */
export const mysqlPasswordFileEnv = 'SDC_MYSQL_PASSWORD_FILE';

/** A password file holds one line; anything larger is the wrong file. */
const passwordFileBytesMax = 4096;

export const mysqlPasswordFileOptions = { 'mysql-password-file': { type: 'string' } } as const;
export const mysqlPasswordFileHelp = [
  '--mysql-password-file F',
  `Read the MySQL password from F (one line), e.g. /run/secrets/db_password, not from the URL; default $${mysqlPasswordFileEnv}`,
] as const;

async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read the MySQL password file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { path });
  }
  if (text.length > passwordFileBytesMax) throw new SdcError('CLI_INPUT', `the MySQL password file ${path} is larger than ${passwordFileBytesMax} bytes`, { path });
  // One line: the newline an editor or `echo` leaves is not part of the password.
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0 || /[\r\n]/.test(password)) throw new SdcError('CLI_INPUT', `the MySQL password file ${path} must hold one non-empty line`, { path });
  return password;
}

/**
 * `--mysql URL` with the password from `--mysql-password-file` (or $SDC_MYSQL_PASSWORD_FILE) put
 * into it; undefined without --mysql. A URL that already has a password and a file is refused:
 * which one was meant is not ours to guess.
 */
export async function mysqlUrlOption(args: ParsedCommandArgs, io: CliIo): Promise<string | undefined> {
  const raw = args.values.mysql;
  if (typeof raw !== 'string') return undefined;
  const flagFile = args.values['mysql-password-file'];
  const file = typeof flagFile === 'string' ? flagFile : io.env[mysqlPasswordFileEnv];
  if (file === undefined || file === '') return raw;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Left to the store URL check, which names what a MySQL URL looks like.
    return raw;
  }
  if (url.password !== '') throw new SdcError('CLI_USAGE', `--mysql has a password and a password file is given (${file}): use one of them`);
  url.password = encodeURIComponent(await readPasswordFile(file));
  return url.toString();
}
