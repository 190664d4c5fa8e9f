// The part of WebCrypto the agent script uses. k6 (v1 and later) exposes WebCrypto as the global
// `crypto`; @types/k6 does not declare it, and the DOM library would bring browser globals
// (window.open) that clash with k6's init-context `open`.
export {};

declare global {
  interface K6CryptoKey { readonly type: string }
  interface K6SubtleCrypto {
    importKey(format: 'pkcs8' | 'raw', keyData: ArrayBuffer, algorithm: { name: string; hash?: string }, extractable: boolean, usages: string[]): Promise<K6CryptoKey>;
    sign(algorithm: { name: string } | string, key: K6CryptoKey, data: ArrayBuffer | Uint8Array): Promise<ArrayBuffer>;
  }
  var crypto: { readonly subtle: K6SubtleCrypto; randomUUID(): string };
  class TextEncoder { encode(text: string): Uint8Array }
}
