// @peculiar/x509 resolves its algorithm registry through tsyringe, which needs the Reflect
// metadata polyfill loaded first; this module is the one place that arranges it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// Node 20's WebCrypto implements Ed25519, which is all the trust layer uses.
x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

/** The only key and signature algorithm in our PKI. */
export const ed25519Algorithm = { name: 'Ed25519' } as const;

/** Parses a certificate from PEM text or DER bytes; parse failures surface as thrown library errors. */
export function parseCertificate(input: string | Uint8Array): x509.X509Certificate {
  return new x509.X509Certificate(typeof input === 'string' ? input : new Uint8Array(input));
}
