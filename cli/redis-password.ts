import type { CliIo, ParsedCommandArgs } from './command.js';
import { storeUrlOption } from './store-password.js';

/**
 * The Redis password from a file or the environment instead of the URL, for the same reasons as
 * the MySQL one (cli/mysql-password.ts): never a command-line argument. The URL may name an ACL
 * user (`redis://sdc@redis:6379/0`); without one the password is the default user's
 * (`requirepass`). A password inside --redis still works when no other source is given.
 */
export const redisPasswordFileEnv = 'SDC_REDIS_PASSWORD_FILE';
/** The password itself, e.g. from a Kubernetes Secret through secretKeyRef. */
export const redisPasswordEnv = 'SDC_REDIS_PASSWORD';

export const redisPasswordFileOptions = { 'redis-password-file': { type: 'string' } } as const;
export const redisPasswordFileHelp = [
  '--redis-password-file F',
  `Read the Redis password from F (one line), e.g. /run/secrets/redis_password, not from the URL; else $${redisPasswordEnv}, else the file named by $${redisPasswordFileEnv}`,
] as const;

/** `--redis URL` with the password from --redis-password-file, $SDC_REDIS_PASSWORD or $SDC_REDIS_PASSWORD_FILE put into it; undefined without --redis. */
export function redisUrlOption(args: ParsedCommandArgs, io: CliIo): Promise<string | undefined> {
  return storeUrlOption(args, io, { option: 'redis', passwordEnv: redisPasswordEnv, passwordFileEnv: redisPasswordFileEnv, what: 'Redis password file' });
}
