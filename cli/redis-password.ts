import type { CliIo, ParsedCommandArgs } from './command.js';
import { urlWithPasswordFile } from './store-password.js';

/**
 * The Redis password from a file instead of the URL, for the same reasons as the MySQL one
 * (cli/mysql-password.ts): never a command-line argument. The URL may name an ACL user
 * (`redis://sdc@redis:6379/0`); without one the password is the default user's (`requirepass`).
 * A password inside --redis still works when no file is given.
 */
export const redisPasswordFileEnv = 'SDC_REDIS_PASSWORD_FILE';

export const redisPasswordFileOptions = { 'redis-password-file': { type: 'string' } } as const;
export const redisPasswordFileHelp = [
  '--redis-password-file F',
  `Read the Redis password from F (one line), e.g. /run/secrets/redis_password, not from the URL; default $${redisPasswordFileEnv}`,
] as const;

/** `--redis URL` with the password from `--redis-password-file` (or $SDC_REDIS_PASSWORD_FILE) put into it; undefined without --redis. */
export async function redisUrlOption(args: ParsedCommandArgs, io: CliIo): Promise<string | undefined> {
  const raw = args.values.redis;
  if (typeof raw !== 'string') return undefined;
  const flagFile = args.values['redis-password-file'];
  const file = typeof flagFile === 'string' ? flagFile : io.env[redisPasswordFileEnv];
  return urlWithPasswordFile({ url: raw, file, urlOption: '--redis', what: 'Redis password file' });
}
