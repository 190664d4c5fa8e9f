import { SdcError } from '../core/errors/index.js';
import {
  childrenOf, contextConstructed, contextPrimitive, derTag, encodingOf, integerValue, readBoolean, readNamedBits,
  readOid, readSmallNonNegativeInteger, readText, readTime, readWhole, valueOf, type DerElement,
} from './der-reader.js';
import { oidCommonName } from './device-profile.js';

/**
 * The fields of an X.509 certificate (RFC 5280 4.1) that the device-certificate check reads and
 * node:crypto's X509Certificate does not expose in a form to check (keyUsage bits,
 * basicConstraints' path length, the signature algorithm, criticality, names as DER), read from
 * the certificate's DER with the bounded reader in der-reader.ts. Views into the caller's bytes,
 * no copies: the gateway reads one of these per AUTH, and @peculiar/x509's full object model for
 * the same job was most of its memory per agent (docs/benchmarks.md).
 */

export const oidEd25519 = '1.3.101.112';
export const extensionOid = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

/** RFC 5280 4.2.1.3 bit numbers. */
export const keyUsageBit = { digitalSignature: 1 << 0, keyCertSign: 1 << 5, cRLSign: 1 << 6 } as const;

/** RFC 5280 4.1.2.2: serials are at most 20 octets. */
const serialBytesMax = 20;

export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The extnValue OCTET STRING's content: the extension's own DER. */
  readonly value: Uint8Array;
}

export interface CertificateFields {
  /** The serial's content bytes in hex, as the issuer wrote them (normalize before comparing). */
  readonly serialHex: string;
  /** Certificate.signatureAlgorithm and TBSCertificate.signature, which RFC 5280 requires to agree. */
  readonly signatureAlgorithmOid: string;
  readonly tbsSignatureAlgorithmOid: string;
  /** The issuer and subject Names' DER, compared byte for byte when a path is built. */
  readonly issuerName: Uint8Array;
  readonly subjectName: Uint8Array;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly extensions: readonly CertificateExtension[];
}

function invalid(why: string): never {
  throw new SdcError('TRUST_CERT_INVALID', `certificate: ${why}`);
}

function algorithmOid(bytes: Uint8Array, element: DerElement, what: string): string {
  if (element.tag !== derTag.sequence) invalid(`${what} is not an AlgorithmIdentifier`);
  const [oid, ...parameters] = childrenOf(bytes, element);
  // Ed25519 has absent parameters (RFC 8410); any other algorithm is refused later by OID.
  if (oid === undefined || parameters.length > 1) invalid(`${what} is not an AlgorithmIdentifier`);
  return readOid(bytes, oid);
}

/** Reads the fields from a certificate's DER; the whole input must be one certificate. */
export function readCertificateFields(der: Uint8Array): CertificateFields {
  const certificate = readWhole(der, derTag.sequence, 'Certificate');
  const [tbs, signatureAlgorithm, signature, ...extra] = childrenOf(der, certificate);
  if (tbs === undefined || signatureAlgorithm === undefined || signature?.tag !== derTag.bitString || extra.length > 0) {
    invalid('not tbsCertificate, signatureAlgorithm and signatureValue');
  }
  if (tbs.tag !== derTag.sequence) invalid('tbsCertificate is not a SEQUENCE');
  const parts = childrenOf(der, tbs);
  let at = 0;
  // Version: [0] EXPLICIT, and only v3 (2) carries extensions, which the profile requires.
  if (parts[at]?.tag !== contextConstructed(0)) invalid('no version (v3 required)');
  const version = childrenOf(der, parts[at++]!);
  if (version.length !== 1 || readSmallNonNegativeInteger(der, version[0]!) !== 2) invalid('version is not v3');
  const serial = parts[at++];
  const tbsSignature = parts[at++];
  const issuer = parts[at++];
  const validity = parts[at++];
  const subject = parts[at++];
  const publicKeyInfo = parts[at++];
  if (serial === undefined || tbsSignature === undefined || issuer?.tag !== derTag.sequence || validity?.tag !== derTag.sequence
    || subject?.tag !== derTag.sequence || publicKeyInfo?.tag !== derTag.sequence) {
    invalid('tbsCertificate lacks a required field');
  }
  // issuerUniqueID [1] and subjectUniqueID [2] are allowed and ignored (RFC 5280 says CAs must not write them).
  while (parts[at]?.tag === contextPrimitive(1) || parts[at]?.tag === contextPrimitive(2)
    || parts[at]?.tag === contextConstructed(1) || parts[at]?.tag === contextConstructed(2)) at++;
  const extensionsWrapper = parts[at++];
  if (at !== parts.length) invalid('unexpected fields after the extensions');
  const [notBefore, notAfter, ...validityExtra] = childrenOf(der, validity);
  if (notBefore === undefined || notAfter === undefined || validityExtra.length > 0) invalid('validity is not two times');
  return {
    serialHex: serialHexOf(der, serial),
    signatureAlgorithmOid: algorithmOid(der, signatureAlgorithm, 'signatureAlgorithm'),
    tbsSignatureAlgorithmOid: algorithmOid(der, tbsSignature, 'tbsCertificate.signature'),
    issuerName: encodingOf(der, issuer),
    subjectName: encodingOf(der, subject),
    notBeforeMs: readTime(der, notBefore),
    notAfterMs: readTime(der, notAfter),
    extensions: extensionsWrapper === undefined ? [] : readExtensions(der, extensionsWrapper),
  };
}

function serialHexOf(der: Uint8Array, serial: DerElement): string {
  const value = integerValue(der, serial);
  if (value.length > serialBytesMax + 1 || (value.length === serialBytesMax + 1 && value[0] !== 0)) invalid(`serial longer than ${serialBytesMax} octets`);
  return Buffer.from(value).toString('hex');
}

function readExtensions(der: Uint8Array, wrapper: DerElement): CertificateExtension[] {
  if (wrapper.tag !== contextConstructed(3)) invalid(`tag 0x${wrapper.tag.toString(16)} where the extensions belong`);
  const [list, ...extra] = childrenOf(der, wrapper);
  if (list?.tag !== derTag.sequence || extra.length > 0) invalid('extensions are not one SEQUENCE');
  const extensions = childrenOf(der, list).map((element) => readExtension(der, element));
  if (extensions.length === 0) invalid('empty extensions');
  // RFC 5280 4.2: a certificate must not include more than one instance of an extension.
  const oids = new Set(extensions.map((e) => e.oid));
  if (oids.size !== extensions.length) invalid('an extension appears twice');
  return extensions;
}

function readExtension(der: Uint8Array, element: DerElement): CertificateExtension {
  if (element.tag !== derTag.sequence) invalid('an extension is not a SEQUENCE');
  const parts = childrenOf(der, element);
  const [oid, second, third, ...extra] = parts;
  if (oid === undefined || second === undefined || extra.length > 0) invalid('an extension is not extnID, critical, extnValue');
  const value = third ?? second;
  if (value.tag !== derTag.octetString) invalid('an extension value is not an OCTET STRING');
  const critical = third === undefined ? false : readBoolean(der, second);
  // DER: a DEFAULT value is never written, so critical FALSE must be absent.
  if (third !== undefined && !critical) invalid('an extension writes the default critical FALSE');
  return { oid: readOid(der, oid), critical, value: valueOf(der, value) };
}

export function findExtension(fields: CertificateFields, oid: string): CertificateExtension | undefined {
  return fields.extensions.find((e) => e.oid === oid);
}

/** basicConstraints: cA (default false) and pathLenConstraint (absent: no limit). */
export function readBasicConstraints(extension: CertificateExtension): { ca: boolean; pathLength: number | undefined } {
  const bytes = extension.value;
  const [ca, pathLength, ...extra] = childrenOf(bytes, readWhole(bytes, derTag.sequence, 'basicConstraints'));
  if (extra.length > 0) invalid('basicConstraints has extra fields');
  if (ca === undefined) return { ca: false, pathLength: undefined };
  if (ca.tag === derTag.integer && pathLength === undefined) return { ca: false, pathLength: readSmallNonNegativeInteger(bytes, ca) };
  const isCa = readBoolean(bytes, ca);
  if (!isCa) invalid('basicConstraints writes the default cA FALSE');
  return { ca: true, pathLength: pathLength === undefined ? undefined : readSmallNonNegativeInteger(bytes, pathLength) };
}

/** keyUsage as named bits (keyUsageBit). */
export function readKeyUsage(extension: CertificateExtension): number {
  const bytes = extension.value;
  return readNamedBits(bytes, readWhole(bytes, derTag.bitString, 'keyUsage'));
}

/** extendedKeyUsage: the purpose OIDs in order. */
export function readExtendedKeyUsage(extension: CertificateExtension): string[] {
  const bytes = extension.value;
  return childrenOf(bytes, readWhole(bytes, derTag.sequence, 'extendedKeyUsage')).map((element) => readOid(bytes, element));
}

/** subjectAltName: each GeneralName's tag number (6 is a URI) and, for the string kinds, its text. */
export function readSubjectAltNames(extension: CertificateExtension): Array<{ kind: number; text: string | undefined }> {
  const bytes = extension.value;
  return childrenOf(bytes, readWhole(bytes, derTag.sequence, 'subjectAltName')).map((name) => {
    const kind = name.tag & 0x1f;
    // Only a uniformResourceIdentifier [6] (an IA5String) is read as text: the profile allows no other kind.
    const text = name.tag === contextPrimitive(6) ? readText(bytes, name) : undefined;
    return { kind, text };
  });
}

export const generalNameKind = { uri: 6 } as const;

/** Every commonName value in a Name, in order (a Name may carry several, the profile allows one). */
export function readCommonNames(name: Uint8Array): string[] {
  const names: string[] = [];
  for (const rdn of childrenOf(name, readWhole(name, derTag.sequence, 'Name'))) {
    if (rdn.tag !== derTag.set) invalid('a Name component is not a SET');
    for (const attribute of childrenOf(name, rdn)) {
      if (attribute.tag !== derTag.sequence) invalid('a Name attribute is not a SEQUENCE');
      const [type, value, ...extra] = childrenOf(name, attribute);
      if (type === undefined || value === undefined || extra.length > 0) invalid('a Name attribute is not type and value');
      if (readOid(name, type) === oidCommonName) names.push(readText(name, value));
    }
  }
  return names;
}
