import { defineErrors } from '../error-spec.js';

/** Keys, signatures and signed envelopes (core/crypto, core/protocol/envelope). */
export const cryptoErrors = defineErrors({
  CRYPTO_BAD_KEY: { fault: 'remote', status: 400, summary: 'Key bytes have the wrong type, length or encoding' },
  CRYPTO_BAD_SIGNATURE_ENCODING: { fault: 'remote', status: 400, summary: 'Signature has the wrong type, length or encoding' },
  CRYPTO_SIGNATURE_INVALID: { fault: 'remote', status: 401, summary: 'Signature does not verify' },
  CRYPTO_UNSUPPORTED_ALG: { fault: 'remote', status: 400, summary: 'Signature algorithm is not supported' },
  CRYPTO_UNKNOWN_KID: { fault: 'remote', status: 401, summary: 'No key is known for the key id' },
});
