import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { requireOption, type Command, type CommandGroup } from '../command.js';
import { tufKeyPassphrase, tufKeyPassphraseEnv } from './tuf-key-passphrase.js';

/**
 * `sdc ota init`: creates the image repository's keys and first metadata (docs/ota.md, "The image
 * repository"): three root keys and three targets (release signer) keys, each written encrypted
 * to --keys-out for its holder to take offline; the online snapshot and timestamp keys and root
 * and targets version 1 into the data directory, which the control plane imports at its next start.
 */
const init: Command = {
  name: 'init',
  summary: 'Create the TUF image repository: root 2-of-3 and targets 2-of-3 offline keys (encrypted files), online snapshot/timestamp keys, root and targets version 1',
  usage: '--dir D --keys-out DIR [--passphrase-file F]',
  optionHelp: [
    ['--dir D', 'The control plane\'s data directory: D/tuf/ receives the metadata and the online keys'],
    ['--keys-out DIR', 'Where the six offline keys are written (root-1..3.pem, targets-1..3.pem), encrypted; hand each to its holder and delete the copies'],
    ['--passphrase-file F', `The offline keys' passphrase, first line, at least 16 characters (else ${tufKeyPassphraseEnv})`],
  ],
  options: { dir: { type: 'string' }, 'keys-out': { type: 'string' }, 'passphrase-file': { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const dataDir = requireOption(args, 'dir');
    const keysOut = requireOption(args, 'keys-out');
    const passphrase = await tufKeyPassphrase(args, io);
    const [{ generateRepositoryKeys, initialMetadata, offlineKeyCount, requireRepositoryUninitialised, writeRepositoryFiles }, { writePrivateKeyFile, requireStrongPassphrase }, { importEd25519PrivateKey }, { systemClock }] = await Promise.all([
      import('../../server/ota/repository-init.js'), import('../../trust/key-files.js'), import('../../trust/ed25519-keys.js'), import('../../runtime/system.js'),
    ]);
    requireStrongPassphrase(passphrase);
    // Every refusal before the first key is written: the offline keys exist nowhere else, so a
    // second run (or a --keys-out that holds another repository's keys) must leave them as they are.
    await requireRepositoryUninitialised(dataDir);
    const keyFile = (role: string, index: number) => join(keysOut, `${role}-${index + 1}.pem`);
    for (const role of ['root', 'targets'] as const) {
      for (let index = 0; index < offlineKeyCount; index++) await requireNoFile(keyFile(role, index));
    }
    const keys = generateRepositoryKeys();
    const written: Array<{ role: string; file: string; keyid: string }> = [];
    for (const role of ['root', 'targets'] as const) {
      for (const [index, generated] of keys[role].entries()) {
        const file = keyFile(role, index);
        const der = new Uint8Array(generated.privateKey.export({ format: 'der', type: 'pkcs8' }));
        // exclusive: one that appeared since the check above is refused too, never replaced.
        await writePrivateKeyFile({ path: file, privateKey: await importEd25519PrivateKey(der), passphrase, exclusive: true });
        der.fill(0);
        written.push({ role, file, keyid: generated.key.keyid });
      }
    }
    await writeRepositoryFiles(dataDir, keys, initialMetadata(keys, systemClock.nowMs()));
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ offline_keys: written, snapshot_keyid: keys.snapshot.key.keyid, timestamp_keyid: keys.timestamp.key.keyid }) + '\n');
      return 0;
    }
    for (const key of written) io.stdout(`${key.role}\t${key.keyid}\t${key.file}\n`);
    io.stdout(`snapshot\t${keys.snapshot.key.keyid}\t(online, ${join(dataDir, 'tuf', 'online')})\ntimestamp\t${keys.timestamp.key.keyid}\t(online)\n`);
    io.stdout(`root and targets version 1 written to ${join(dataDir, 'tuf', 'metadata')}; restart the control plane to serve them.\n`);
    io.stdout(`Move each offline key to its holder; the control plane never needs them.\n`);
    return 0;
  },
};

/** TRUST_KEY_FILE_EXISTS when anything (a file, a link, even a dangling one) is at `path`. */
async function requireNoFile(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new SdcError('CLI_INPUT', `${path} cannot be checked`, { path }, { cause: error });
  }
  throw new SdcError('TRUST_KEY_FILE_EXISTS', `${path} exists; nothing was written (move the old keys away or name another --keys-out)`, { path });
}

export const otaCommands: CommandGroup = { name: 'ota', summary: 'The OTA image repository (TUF): sdc ota init', commands: [init] };
