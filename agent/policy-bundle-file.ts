import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import type { SignedPolicyBundle } from '../core/protocol/policy-bundle-schema.js';
import { canonicalize } from '../core/protocol/canonical-json.js';
import { parseStrictJson } from '../core/protocol/strict-json.js';
import { policyBundleLimits } from '../core/protocol/policy-bundle.js';
import { privateFileMode, writeFileAtomic } from '../runtime/atomic-file.js';
import type { PolicyBundleStore } from './policy-bundle-guard.js';

/** The enforced bundle in the agent directory (docs/agent.md): the signed document as received. */
export const policyBundleFileName = 'policy-bundle.json';

/**
 * The agent's bundle on disk: replaced atomically (write, fsync, rename), so a crash leaves the
 * old bundle or the new one, never a torn file. What is read back is parsed with the frame
 * limits and checked by the guard (signature included) before it is enforced again.
 */
export function createFilePolicyBundleStore(dir: string): PolicyBundleStore {
  const path = join(dir, policyBundleFileName);
  return {
    async load(): Promise<unknown> {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
      // A little over the signed size limit for the file's own bytes; larger is not one we wrote.
      if (text.length > policyBundleLimits.signedBytesMax * 2) throw new SdcError('POLICY_BUNDLE_INVALID', `${path} is larger than any bundle`);
      try {
        return parseStrictJson(text, { frameBytesMax: policyBundleLimits.signedBytesMax * 2 });
      } catch (error) {
        throw new SdcError('POLICY_BUNDLE_INVALID', `${path} is not a bundle: ${SdcError.is(error) ? error.code : String(error)}`, { path }, { cause: error });
      }
    },
    async save(signed: SignedPolicyBundle, text?: string): Promise<void> {
      await writeFileAtomic(path, text ?? canonicalize(signed), { mode: privateFileMode });
    },
  };
}
