import type { CliIo, ParsedCommandArgs } from './command.js';
import { storeUrlOption } from './store-password.js';

/**
 * The MySQL password from a file (a Docker or compose secret, a 0600 file) or the environment
 * instead of the URL, so that it is never a command-line argument: those are visible to every
 * user of the machine (ps, /proc/PID/cmdline) and in a container's recorded configuration. The
 * file's path may also come from this variable, so that `docker compose run SERVICE user add ...`
 * inherits it from the service.
 */
export const mysqlPasswordFileEnv = 'SDC_MYSQL_PASSWORD_FILE';
/** The password itself, e.g. from a Kubernetes Secret through secretKeyRef. */
export const mysqlPasswordEnv = 'SDC_MYSQL_PASSWORD';

export const mysqlPasswordFileOptions = { 'mysql-password-file': { type: 'string' } } as const;
export const mysqlPasswordFileHelp = [
  '--mysql-password-file F',
  `Read the MySQL password from F (one line), e.g. /run/secrets/db_password, not from the URL; else $${mysqlPasswordEnv}, else the file named by $${mysqlPasswordFileEnv}`,
] as const;

/** `--mysql URL` with the password from --mysql-password-file, $SDC_MYSQL_PASSWORD or $SDC_MYSQL_PASSWORD_FILE put into it; undefined without --mysql. */
export function mysqlUrlOption(args: ParsedCommandArgs, io: CliIo): Promise<string | undefined> {
  return storeUrlOption(args, io, { option: 'mysql', passwordEnv: mysqlPasswordEnv, passwordFileEnv: mysqlPasswordFileEnv, what: 'MySQL password file' });
}
