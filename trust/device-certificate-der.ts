import { createHash } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { extensionOid, oidEd25519 } from './certificate-fields.js';
import { contextConstructed, contextPrimitive } from './der-reader.js';
import { concatBytes } from '../core/crypto/bytes.js';
import {
  derBitString, derElement, derIa5, derOctetString, derOid, derPositiveIntegerFromHex, derSequence, derSet, derSmallInteger,
  derTime, derUtf8String,
} from './der-writer.js';
import { ed25519SpkiPrefix } from './device-csr.js';
import { deviceSanUri, oidCommonName } from './device-profile.js';

/**
 * The device certificate of device-profile.ts, encoded directly: the profile fixes every field but
 * the serial, the validity, the device id and its key, so a certificate is the issuer's fixed
 * parts (its name and the extensions every certificate shares, encoded once per issuer) with those
 * values placed in. The X.509 library's generic ASN.1 layers cost about 2.5 ms of CPU per
 * certificate and were the largest share of an enrollment (issue 15). The bytes equal the
 * library's for the same values (device-certificate-der.test.ts), and OpenSSL reads them.
 */

const ed25519PublicKeyBytes = 32;
/** X.509 v3 is INTEGER 2 inside [0] EXPLICIT. */
const versionV3 = derElement(contextConstructed(0), derSmallInteger(2));
/** AlgorithmIdentifier for Ed25519: the OID with parameters absent (RFC 8410). */
const ed25519AlgorithmId = derSequence(derOid(oidEd25519));
const commonNameOid = derOid(oidCommonName);
const subjectAltNameOid = derOid(extensionOid.subjectAltName);
const subjectKeyIdentifierOid = derOid(extensionOid.subjectKeyIdentifier);

/** The parts every certificate of one issuer shares. */
export interface DeviceCertificateIssuerParts {
  /** The issuer's subject Name, DER, exactly as its certificate has it. */
  readonly issuerNameDer: Uint8Array;
  /** Whole Extension encodings placed before the per-device ones, in order. */
  readonly fixedExtensionsDer: readonly Uint8Array[];
}

export interface DeviceCertificateValues {
  /** Normalized hex (serial-number.ts). */
  readonly serialHex: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** A well-formed device id (requireDeviceId): the subject CN and, as a URN, the URI SAN. */
  readonly deviceId: string;
  readonly publicKeyRaw: Uint8Array;
}

/**
 * The characters of X.520's PrintableString, the string type the X.509 library chooses for a name
 * value made of them only (UTF8String otherwise): the same choice keeps the bytes the library's.
 */
const printableString = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const printableStringTag = 0x13;

function directoryString(text: string): Uint8Array {
  return printableString.test(text) ? derElement(printableStringTag, new Uint8Array(Buffer.from(text, 'latin1'))) : derUtf8String(text);
}

/** The TBSCertificate: the bytes the issuer signs. */
export function encodeDeviceTbsCertificate(issuer: DeviceCertificateIssuerParts, values: DeviceCertificateValues): Uint8Array {
  if (values.publicKeyRaw.length !== ed25519PublicKeyBytes) throw new SdcError('TRUST_INVALID_ARGUMENT', 'device key must be 32 raw Ed25519 bytes');
  const subject = derSequence(derSet(derSequence(commonNameOid, directoryString(values.deviceId))));
  const publicKeyInfo = concatBytes(ed25519SpkiPrefix, values.publicKeyRaw);
  const generalNames = derSequence(derIa5(contextPrimitive(6), deviceSanUri(values.deviceId)));
  // RFC 5280's method 1: SHA-1 of the subjectPublicKey bits, here the raw key.
  const keyId = createHash('sha1').update(values.publicKeyRaw).digest();
  const extensions = derSequence(
    ...issuer.fixedExtensionsDer,
    derSequence(subjectAltNameOid, derOctetString(generalNames)),
    derSequence(subjectKeyIdentifierOid, derOctetString(derOctetString(keyId))),
  );
  return derSequence(
    versionV3,
    derPositiveIntegerFromHex(values.serialHex),
    ed25519AlgorithmId,
    issuer.issuerNameDer,
    derSequence(derTime(values.notBeforeMs), derTime(values.notAfterMs)),
    subject,
    publicKeyInfo,
    derElement(contextConstructed(3), extensions),
  );
}

/** The Certificate: the TBS, the algorithm again, and the issuer's Ed25519 signature over the TBS. */
export function encodeSignedCertificate(tbs: Uint8Array, signature: Uint8Array): Uint8Array {
  return derSequence(tbs, ed25519AlgorithmId, derBitString(signature));
}
