import { SdcError } from '../core/errors/index.js';
import type { RootKeyProtection } from '../trust/pki-directory.js';
import type { CliIo, ParsedCommandArgs } from './command.js';
import { readSecretFile } from './secret-file.js';

/** The passphrase from the environment; never a flag value (it would show in `ps` and shell history). */
export const rootKeyPassphraseEnv = 'SDC_ROOT_KEY_PASSPHRASE';

export const rootKeyProtectionOptions = {
  'root-key-passphrase-file': { type: 'string' },
  'insecure-plain-root-key': { type: 'boolean' },
} as const;

export const rootKeyProtectionHelp = [
  ['--root-key-passphrase-file F', `Encrypt the root key with the passphrase in F (one line, at least 16 characters; F mode 0600 or 0400). Else $${rootKeyPassphraseEnv}, else asked on the terminal`],
  ['--insecure-plain-root-key', 'Write the root key NOT encrypted (tests only: whoever reads the file can issue certificates)'],
] as const;

const howToSupply = `give --root-key-passphrase-file F (a 0600 file), set ${rootKeyPassphraseEnv}, or run on a terminal to be asked; `
  + '--insecure-plain-root-key writes it unencrypted (tests only)';

/**
 * How `sdc pki init` protects the new root key, from the first of: --root-key-passphrase-file,
 * $SDC_ROOT_KEY_PASSPHRASE, a prompt (echo off, asked twice) when stdin is a terminal. With none
 * of them the key is not written (CLI_ROOT_KEY_PASSPHRASE_MISSING saying how to give one), unless
 * --insecure-plain-root-key asks for a plain key by name; that flag beside a passphrase is refused,
 * since one of the two was not meant.
 */
export async function rootKeyProtection(args: ParsedCommandArgs, io: CliIo): Promise<RootKeyProtection> {
  const file = args.values['root-key-passphrase-file'];
  const fromEnv = io.env[rootKeyPassphraseEnv];
  const plain = args.values['insecure-plain-root-key'] === true;
  if (plain) {
    if (typeof file === 'string') throw new SdcError('CLI_USAGE', '--insecure-plain-root-key and --root-key-passphrase-file: use one of them');
    if (fromEnv !== undefined && fromEnv !== '') throw new SdcError('CLI_USAGE', `--insecure-plain-root-key and ${rootKeyPassphraseEnv} is set: use one of them`);
    return { insecurePlain: true };
  }
  if (typeof file === 'string') return { passphrase: await readSecretFile({ path: file, what: 'root key passphrase file', privateModeRequired: true }) };
  if (fromEnv !== undefined && fromEnv !== '') return { passphrase: fromEnv };
  if (io.promptSecret !== undefined) return { passphrase: await promptTwice(io.promptSecret) };
  throw new SdcError('CLI_ROOT_KEY_PASSPHRASE_MISSING', `no passphrase for the root CA key: ${howToSupply}`);
}

/** Typed twice, as for any secret that cannot be recovered: a typo would lock the root key away for good. */
async function promptTwice(prompt: (question: string) => Promise<string>): Promise<string> {
  const first = await prompt('Root key passphrase (at least 16 characters): ');
  const second = await prompt('Same passphrase again: ');
  if (first !== second) throw new SdcError('CLI_INPUT', 'the two passphrases differ; nothing was written');
  return first;
}
