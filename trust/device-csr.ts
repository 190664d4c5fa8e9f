import { verify as verifySignature } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { okpPublicKey } from '../runtime/okp-key-import.js';
import { oidEd25519 } from './certificate-fields.js';
import {
  childrenOf, contextConstructed, derTag, encodingOf, readOid, readSmallNonNegativeInteger, readText, readWhole, valueOf,
} from './der-reader.js';
import { oidCommonName, requireDeviceId } from './device-profile.js';

/** An Ed25519 CSR with one CN is a few hundred bytes; anything far larger is not ours. */
export const csrPemLengthMax = 8192;

export interface DeviceCsr {
  /** The subject CN, already checked to be a well-formed device id. */
  readonly commonName: string;
  /** The requested key, raw Ed25519 (32 bytes). */
  readonly publicKeyRaw: Uint8Array;
}

/** The fields of a PKCS#10 request (RFC 2986) that issuance reads, as views into its DER. */
interface CsrParts {
  /** CertificationRequestInfo exactly as received: the bytes the signature covers. */
  readonly signedBytes: Uint8Array;
  readonly commonNames: readonly string[];
  readonly spki: Uint8Array;
  readonly infoAlgorithmOid: string;
  readonly algorithmHasParameters: boolean;
  readonly signature: Uint8Array;
}

const pemBlock = /^-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;

function csrInvalid(why: string, cause?: unknown): never {
  throw new SdcError('TRUST_CSR_INVALID', `CSR ${why}`, {}, cause === undefined ? undefined : { cause });
}

function derFromPem(csrPem: string): Uint8Array {
  const match = pemBlock.exec(csrPem.trim());
  if (match === null || (match[1] ?? '') !== (match[3] ?? '')) csrInvalid('cannot be parsed as PEM PKCS#10');
  const base64 = match[2]!.replace(/\r?\n/g, '');
  const der = new Uint8Array(Buffer.from(base64, 'base64'));
  // Buffer skips what is not base64; a round trip shows the text was nothing else.
  if (Buffer.from(der).toString('base64') !== base64) csrInvalid('PEM body is not canonical base64');
  return der;
}

/**
 * Reads a CertificationRequest with the bounded DER reader (der-reader.ts), not the X.509
 * library: its generic ASN.1 layers were a large share of an enrollment's CPU (issue 15), and a
 * strict reader for the one shape we accept refuses anything else early. The request's
 * attributes are skipped: the profile decides the extensions.
 */
function readCsrParts(der: Uint8Array): CsrParts {
  const request = readWhole(der, derTag.sequence, 'CertificationRequest');
  const [info, algorithm, signature, ...extra] = childrenOf(der, request);
  if (info?.tag !== derTag.sequence || algorithm?.tag !== derTag.sequence || signature?.tag !== derTag.bitString || extra.length > 0) {
    csrInvalid('is not certificationRequestInfo, signatureAlgorithm and signature');
  }
  const [version, subject, spki, attributes, ...infoExtra] = childrenOf(der, info);
  if (version === undefined || readSmallNonNegativeInteger(der, version) !== 0) csrInvalid('version is not 1 (0)');
  if (subject?.tag !== derTag.sequence || spki?.tag !== derTag.sequence || attributes?.tag !== contextConstructed(0) || infoExtra.length > 0) {
    csrInvalid('info is not subject, subjectPKInfo and attributes');
  }
  const commonNames: string[] = [];
  for (const rdn of childrenOf(der, subject)) {
    if (rdn.tag !== derTag.set) csrInvalid('subject has a name component that is not a SET');
    for (const typeAndValue of childrenOf(der, rdn)) {
      const [type, value, ...rest] = typeAndValue.tag === derTag.sequence ? childrenOf(der, typeAndValue) : [];
      if (type === undefined || value === undefined || rest.length > 0) csrInvalid('subject has a malformed attribute');
      if (readOid(der, type) === oidCommonName) commonNames.push(readText(der, value));
    }
  }
  const [algorithmOid, ...parameters] = childrenOf(der, algorithm);
  if (algorithmOid === undefined || parameters.length > 1) csrInvalid('signatureAlgorithm is not an AlgorithmIdentifier');
  const signatureBits = valueOf(der, signature);
  if (signatureBits[0] !== 0) csrInvalid('signature BIT STRING has unused bits');
  return {
    signedBytes: encodingOf(der, info),
    commonNames,
    spki: encodingOf(der, spki),
    infoAlgorithmOid: readOid(der, algorithmOid),
    algorithmHasParameters: parameters.length > 0,
    signature: signatureBits.subarray(1),
  };
}

/**
 * Parses a PEM CSR and checks what issuance depends on: an Ed25519 key, a valid
 * self-signature (proof that the requester holds the private key) and a single CN that is a
 * well-formed device id. Only the key and the CN are used from a CSR; its requested
 * extensions are ignored, the profile decides them.
 */
export async function parseDeviceCsr(csrPem: string): Promise<DeviceCsr> {
  if (csrPem.length > csrPemLengthMax) throw new SdcError('TRUST_CSR_INVALID', `CSR is longer than ${csrPemLengthMax} characters`);
  let parts: CsrParts;
  try {
    parts = readCsrParts(derFromPem(csrPem));
  } catch (error) {
    if (SdcError.is(error, 'TRUST_CSR_INVALID')) throw error;
    // The DER reader speaks of certificates; here the bytes are a request.
    csrInvalid(`cannot be parsed as PKCS#10: ${(error as Error).message}`, error);
  }
  if (parts.infoAlgorithmOid !== oidEd25519) {
    throw new SdcError('TRUST_CSR_KEY_ALGORITHM', `CSR signature algorithm is ${parts.infoAlgorithmOid}, not Ed25519`);
  }
  if (parts.algorithmHasParameters) throw new SdcError('TRUST_CSR_INVALID', 'CSR signature algorithm has parameters (Ed25519 has none, RFC 8410)');
  const publicKeyRaw = rawEd25519FromSpki(parts.spki);
  let signatureOk = false;
  try {
    // node:crypto on a key imported through JWK (runtime/okp-key-import.ts says why JWK).
    signatureOk = verifySignature(null, parts.signedBytes, okpPublicKey('Ed25519', publicKeyRaw), parts.signature);
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) throw new SdcError('TRUST_CSR_INVALID', 'CSR self-signature does not verify');
  if (parts.commonNames.length !== 1) throw new SdcError('TRUST_CSR_SUBJECT_MISMATCH', 'CSR subject must have exactly one CN');
  return { commonName: requireDeviceId(parts.commonNames[0]!), publicKeyRaw };
}

/** Ed25519 SubjectPublicKeyInfo in DER: this fixed 12-byte prefix (RFC 8410), then the 32-byte key. */
export const ed25519SpkiPrefix = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** The raw 32-byte key of an Ed25519 SPKI; anything else is TRUST_CSR_KEY_ALGORITHM. */
export function rawEd25519FromSpki(spki: ArrayBuffer | Uint8Array): Uint8Array {
  const bytes = spki instanceof Uint8Array ? spki : new Uint8Array(spki);
  if (bytes.length !== ed25519SpkiPrefix.length + 32 || !ed25519SpkiPrefix.every((b, i) => bytes[i] === b)) {
    throw new SdcError('TRUST_CSR_KEY_ALGORITHM', 'CSR key is not a 32-byte Ed25519 key');
  }
  return bytes.slice(ed25519SpkiPrefix.length);
}
