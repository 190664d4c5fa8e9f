import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { JsonFilePairingTokenStore } from './pairing-tokens.js';
import { JsonFileRevocationStore } from './revocation-file-store.js';
import { fixedNow, withTempDir } from './test-fixtures.js';

/** Files neither store can take: each must be refused as TRUST_STORE_CORRUPT, never read as an empty store. */
const corruptFiles = ['nope', '', 'null', '[]', '"text"', '{"version":2,"records":[],"entries":[],"lastCrlNumber":"0"}', '{"records":[],"entries":[]}'];

const stores = {
  'pairing tokens': async (path: string) => new JsonFilePairingTokenStore(path).consume('0'.repeat(64), { deviceId: 'dev-1', now: fixedNow }),
  revocations: async (path: string) => (await JsonFileRevocationStore.open(path)).list(),
};

describe('trust/ JSON file stores read their file one way (json-store-file.ts)', () => {
  for (const [name, use] of Object.entries(stores)) {
    it(`${name}: a corrupt file is TRUST_STORE_CORRUPT naming the file; a missing one is an empty store`, async () => {
      await withTempDir(async (dir) => {
        const path = join(dir, 'store.json');
        await use(path);
        for (const text of corruptFiles) {
          await writeFile(path, text);
          await assert.rejects(use(path), (e) => SdcError.is(e, 'TRUST_STORE_CORRUPT') && e.message.startsWith(path), JSON.stringify(text));
        }
      });
    });
  }
});
