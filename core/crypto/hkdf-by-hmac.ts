/** An HMAC-SHA256 of a message under a key: 32 bytes. The caller's implementation (node:crypto, noble, ...). */
export type HmacSha256 = (key: Uint8Array, message: Uint8Array) => Uint8Array;

/**
 * HKDF-SHA256 (RFC 5869) as its HMACs, the same bytes as node:crypto's hkdfSync (the tests check
 * both against RFC 5869's vectors and against hkdfSync on random inputs). Here, sans-IO, with the
 * HMAC a parameter, so the services' crypto (runtime/) and the simulator's (sim/) share one copy.
 * Why not hkdfSync: it sets up an OpenSSL key-derivation context and an async resource per call,
 * where a session key's two or three HMACs cost a few microseconds (issue 17's start-up and AUTH).
 * Inputs are not checked here: callers run sessionCryptoChecks.hkdf first (length 1..255 blocks).
 */
export function hkdfSha256ByHmac(
  hmacSha256: HmacSha256,
  input: { ikm: Uint8Array; salt: Uint8Array; info: Uint8Array; length: number },
): Uint8Array {
  // RFC 5869 2.2: an empty salt is HashLen zeros, which is also how HMAC pads an empty key.
  const prk = hmacSha256(input.salt, input.ikm);
  const okm = new Uint8Array(input.length);
  // T(n) = HMAC(PRK, T(n-1) || info || n); one buffer reused: T(n-1) in front, then info, then n.
  const blockBytes = 32;
  const message = new Uint8Array(blockBytes + input.info.length + 1);
  message.set(input.info, blockBytes);
  let previousBytes = 0;
  for (let counter = 1, at = 0; at < input.length; counter += 1) {
    const tail = message.subarray(blockBytes - previousBytes);
    tail[tail.length - 1] = counter;
    const block = hmacSha256(prk, tail);
    okm.set(block.subarray(0, Math.min(block.length, input.length - at)), at);
    at += block.length;
    message.set(block, 0);
    previousBytes = blockBytes;
  }
  return okm;
}
