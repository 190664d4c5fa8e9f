import { stat } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';
import { fileExists } from '../runtime/atomic-file.js';

/**
 * A command that reads a data directory refuses one that does not exist or that `sdc pki init`
 * never initialised: opening the embedded database there would quietly create an empty one
 * (and `audit verify` would then report `ok: 0 entries`).
 */
export async function requireInitialisedDataDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) {
    throw new SdcError('TRUST_PKI_MISSING', `data directory ${dir} does not exist (create it with sdc pki init --dir ${dir})`, { path: dir });
  }
  // Imported here: the PKI module loads the X.509 library, too slow for every start of the CLI.
  const { pkiPaths } = await import('../trust/pki-directory.js');
  const marker = pkiPaths(dir).intermediateCertPath;
  if (!(await fileExists(marker))) {
    throw new SdcError('TRUST_PKI_MISSING', `${dir} is not an initialised data directory: ${marker} does not exist (run sdc pki init --dir ${dir})`, { path: dir });
  }
}
