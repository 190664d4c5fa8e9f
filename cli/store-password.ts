import { SdcError } from '../core/errors/index.js';
import type { CliIo, ParsedCommandArgs } from './command.js';
import { readSecretFile } from './secret-file.js';

/** Where one store's password may come from, besides the URL itself. */
export interface StorePasswordSources {
  /** The URL option (`mysql`, `redis`); its password-file option is `<name>-password-file`. */
  option: 'mysql' | 'redis';
  /** The variable holding the password itself (a Kubernetes secretKeyRef, say). */
  passwordEnv: string;
  /** The variable naming a password file (a Docker or compose secret). */
  passwordFileEnv: string;
  /** How refusals name the file (`MySQL password file`). */
  what: string;
}

/**
 * The store URL option with its password put in, percent-encoded, from the first of: the
 * `--<option>-password-file` flag, the password variable, the password-file variable (the same
 * order as SDC_PASSWORD before SDC_PASSWORD_FILE, with an explicit flag first). Undefined without
 * the URL option. A URL that already has a password and another source is refused: which one was
 * meant is not ours to guess. A URL that does not parse is returned as given, for the store URL
 * check that names what such a URL looks like. The password never appears in a refusal: only the
 * file's path or the variable's name does.
 */
export async function storeUrlOption(args: ParsedCommandArgs, io: CliIo, sources: StorePasswordSources): Promise<string | undefined> {
  const raw = args.values[sources.option];
  if (typeof raw !== 'string') return undefined;
  const source = passwordSource(args, io, sources);
  if (source === undefined) return raw;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return raw;
  }
  if (url.password !== '') throw new SdcError('CLI_USAGE', `--${sources.option} has a password and ${source.name} gives one too: use one of them`);
  const password = source.file === undefined ? source.value! : await readSecretFile({ path: source.file, what: sources.what, privateModeRequired: false });
  url.password = encodeURIComponent(password);
  return url.toString();
}

function passwordSource(args: ParsedCommandArgs, io: CliIo, sources: StorePasswordSources): { name: string; file?: string; value?: string } | undefined {
  const flagFile = args.values[`${sources.option}-password-file`];
  if (typeof flagFile === 'string' && flagFile !== '') return { name: `a password file (${flagFile})`, file: flagFile };
  const value = io.env[sources.passwordEnv];
  if (value !== undefined && value !== '') return { name: sources.passwordEnv, value };
  const envFile = io.env[sources.passwordFileEnv];
  if (envFile !== undefined && envFile !== '') return { name: `a password file (${envFile})`, file: envFile };
  return undefined;
}
