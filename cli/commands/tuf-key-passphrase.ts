import { readFile, stat } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import type { CliIo, ParsedCommandArgs } from '../command.js';

/** Where `sdc ota init` and `sdc release sign` take the offline keys' passphrase from when no file is named; never a flag value. */
export const tufKeyPassphraseEnv = 'SDC_TUF_KEY_PASSPHRASE';
const passphraseFileBytesMax = 4096;

/** `--passphrase-file F` (its first line; the file must be 0600) or $SDC_TUF_KEY_PASSPHRASE; CLI_USAGE when neither is there. */
export async function tufKeyPassphrase(args: ParsedCommandArgs, io: CliIo): Promise<string> {
  const file = args.values['passphrase-file'];
  if (typeof file === 'string') {
    let text: string;
    try {
      const info = await stat(file);
      if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) throw new SdcError('CLI_SECRET_FILE_PERMISSIONS', `${file} has mode ${(info.mode & 0o777).toString(8)}; chmod 600 it`);
      if (info.size > passphraseFileBytesMax) throw new SdcError('CLI_INPUT', `${file} is too large to be a passphrase file`);
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (SdcError.is(error)) throw error;
      throw new SdcError('CLI_INPUT', `--passphrase-file ${file} cannot be read`, {}, { cause: error });
    }
    const line = text.split(/\r?\n/)[0] ?? '';
    if (line.length === 0) throw new SdcError('CLI_INPUT', `${file} has no passphrase on its first line`);
    return line;
  }
  const fromEnv = io.env[tufKeyPassphraseEnv];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  throw new SdcError('CLI_USAGE', `give the key passphrase with --passphrase-file F or ${tufKeyPassphraseEnv}`);
}
