/** Ed25519 sizes in bytes (RFC 8032 section 5.1). Kept apart so browser builds need no node:crypto. */
export const ed25519SeedBytes = 32;
export const ed25519PublicKeyBytes = 32;
export const ed25519SignatureBytes = 64;
