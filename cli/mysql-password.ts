import type { CliIo, ParsedCommandArgs } from './command.js';
import { urlWithPasswordFile } from './store-password.js';

/**
 * The MySQL password from a file (a Docker or compose secret, a 0600 file) instead of the URL, so
 * that it is never a command-line argument: those are visible to every user of the machine (ps,
 * /proc/PID/cmdline) and in a container's recorded configuration. The file's path may also come
 * from this variable, so that `docker compose run SERVICE user add ...` inherits it from the service.
 */
export const mysqlPasswordFileEnv = 'SDC_MYSQL_PASSWORD_FILE';

export const mysqlPasswordFileOptions = { 'mysql-password-file': { type: 'string' } } as const;
export const mysqlPasswordFileHelp = [
  '--mysql-password-file F',
  `Read the MySQL password from F (one line), e.g. /run/secrets/db_password, not from the URL; default $${mysqlPasswordFileEnv}`,
] as const;

/**
 * `--mysql URL` with the password from `--mysql-password-file` (or $SDC_MYSQL_PASSWORD_FILE) put
 * into it; undefined without --mysql. A URL that already has a password and a file is refused.
 */
export async function mysqlUrlOption(args: ParsedCommandArgs, io: CliIo): Promise<string | undefined> {
  const raw = args.values.mysql;
  if (typeof raw !== 'string') return undefined;
  const flagFile = args.values['mysql-password-file'];
  const file = typeof flagFile === 'string' ? flagFile : io.env[mysqlPasswordFileEnv];
  return urlWithPasswordFile({ url: raw, file, urlOption: '--mysql', what: 'MySQL password file' });
}
