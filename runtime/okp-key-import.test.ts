import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { concatBytes } from '../core/crypto/bytes.js';
import { okpPrivateKey, okpPublicKey, okpRawPublicKey, privateJwkImportWorks, type OkpCurve } from './okp-key-import.js';

const pkcs8Prefix: Record<OkpCurve, string> = { Ed25519: '302e020100300506032b657004220420', X25519: '302e020100300506032b656e04220420' };

describe('OKP key import through JWK', () => {
  for (const crv of ['Ed25519', 'X25519'] as const) {
    it(`${crv}: the JWK path is in use on this node and gives the same key as DER for 200 random secrets`, () => {
      assert.equal(privateJwkImportWorks(crv), true, 'the self-check against the RFC vector passed');
      for (let i = 0; i < 200; i++) {
        const secret = new Uint8Array(randomBytes(32));
        const byDer = createPrivateKey({ key: Buffer.from(concatBytes(Buffer.from(pkcs8Prefix[crv], 'hex'), secret)), format: 'der', type: 'pkcs8' });
        const expected = String(createPublicKey(byDer).export({ format: 'jwk' }).x);
        const key = okpPrivateKey(crv, secret);
        assert.equal(okpRawPublicKey(key), expected);
        assert.equal(okpRawPublicKey(okpPublicKey(crv, Buffer.from(expected, 'base64url'))), expected);
      }
    });
  }
});
