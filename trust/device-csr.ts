import { verify as verifySignature } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { okpPublicKey } from '../runtime/okp-key-import.js';
import { oidCommonName, requireDeviceId } from './device-profile.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

/** An Ed25519 CSR with one CN is a few hundred bytes; anything far larger is not ours. */
export const csrPemLengthMax = 8192;

export interface DeviceCsr {
  readonly request: x509.Pkcs10CertificateRequest;
  /** The subject CN, already checked to be a well-formed device id. */
  readonly commonName: string;
  /** The requested key, raw Ed25519 (32 bytes). */
  readonly publicKeyRaw: Uint8Array;
}

/**
 * Parses a PEM CSR and checks what issuance depends on: an Ed25519 key, a valid
 * self-signature (proof that the requester holds the private key) and a single CN that is a
 * well-formed device id. Only the key and the CN are used from a CSR; its requested
 * extensions are ignored, the profile decides them.
 */
export async function parseDeviceCsr(csrPem: string): Promise<DeviceCsr> {
  if (csrPem.length > csrPemLengthMax) throw new SdcError('TRUST_CSR_INVALID', `CSR is longer than ${csrPemLengthMax} characters`);
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (error) {
    throw new SdcError('TRUST_CSR_INVALID', 'CSR cannot be parsed as PEM PKCS#10', {}, { cause: error });
  }
  if (request.publicKey.algorithm.name !== ed25519Algorithm.name || request.signatureAlgorithm.name !== ed25519Algorithm.name) {
    throw new SdcError('TRUST_CSR_KEY_ALGORITHM', `CSR key algorithm is ${request.publicKey.algorithm.name}, not Ed25519`);
  }
  const publicKeyRaw = rawEd25519FromSpki(request.publicKey.rawData);
  let signatureOk = false;
  try {
    // node:crypto on a key imported through JWK, not the X.509 library's WebCrypto path: that one
    // imports the key through OpenSSL's DER decoder and runs each step as a thread-pool job, most of
    // a CSR check's CPU at enrollment (issue 15; runtime/okp-key-import.ts says why JWK).
    signatureOk = verifySignature(null, signedBytesOf(request), okpPublicKey('Ed25519', publicKeyRaw), new Uint8Array(request.signature));
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) throw new SdcError('TRUST_CSR_INVALID', 'CSR self-signature does not verify');
  const commonNames = request.subjectName.getField(oidCommonName);
  if (commonNames.length !== 1) throw new SdcError('TRUST_CSR_SUBJECT_MISMATCH', 'CSR subject must have exactly one CN');
  return { request, commonName: requireDeviceId(commonNames[0]!), publicKeyRaw };
}

/**
 * The CertificationRequestInfo exactly as received (the bytes the signature covers). The library
 * keeps them in `tbs`, which its typings mark private although it is a plain getter that its own
 * verify() reads; re-encoding the parsed structure could differ from what was signed.
 */
function signedBytesOf(request: x509.Pkcs10CertificateRequest): Uint8Array {
  const tbs = (request as unknown as { readonly tbs: unknown }).tbs;
  if (tbs instanceof ArrayBuffer) return new Uint8Array(tbs);
  if (ArrayBuffer.isView(tbs)) return new Uint8Array(tbs.buffer, tbs.byteOffset, tbs.byteLength);
  throw new SdcError('TRUST_CSR_INVALID', 'CSR has no signed part');
}

/** Ed25519 SubjectPublicKeyInfo in DER: this fixed 12-byte prefix (RFC 8410), then the 32-byte key. */
const ed25519SpkiPrefix = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** The raw 32-byte key of an Ed25519 SPKI; anything else is TRUST_CSR_KEY_ALGORITHM. */
export function rawEd25519FromSpki(spki: ArrayBuffer): Uint8Array {
  const bytes = new Uint8Array(spki);
  if (bytes.length !== ed25519SpkiPrefix.length + 32 || !ed25519SpkiPrefix.every((b, i) => bytes[i] === b)) {
    throw new SdcError('TRUST_CSR_KEY_ALGORITHM', 'CSR key is not a 32-byte Ed25519 key');
  }
  return bytes.slice(ed25519SpkiPrefix.length);
}
