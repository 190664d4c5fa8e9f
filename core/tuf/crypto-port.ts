/**
 * What the TUF client needs from a crypto library, as a port: core/tuf stays sans-IO and the
 * runtime passes node:crypto (runtime/tuf-crypto-node.ts). Keys are TUF's own key objects,
 * unparsed, so that the adapter decides what it can verify: the schemes TUF's reference client
 * (python-securesystemslib) verifies are ed25519 (hex), ecdsa-sha2-nistp256, rsassa-pss-sha256
 * and rsa-pkcs1v15-sha256 (PEM SubjectPublicKeyInfo).
 */
export interface TufPublicKey {
  readonly keyid: string;
  readonly keytype: string;
  readonly scheme: string;
  /** keyval.public exactly as the metadata carries it. */
  readonly publicValue: string;
}

export interface TufCrypto {
  /**
   * True only when `signature` is a valid signature of `message` under `key`. False for a wrong
   * signature, a malformed key or signature and an unsupported key type or scheme: one bad key
   * among a role's keys must cost that key's vote, never the whole verification. Never throws.
   */
  verify(key: TufPublicKey, message: Uint8Array, signature: Uint8Array): boolean;
  /** The digest of `bytes` under a TUF hash algorithm name (sha256, sha512, ...); undefined when unsupported. */
  digest(algorithm: string, bytes: Uint8Array): Uint8Array | undefined;
}
