import { X509Certificate } from 'node:crypto';
import { SdcError } from '../core/errors/index.js';
import { isDeviceId } from '../core/protocol/device-id.js';
import {
  extensionOid, findExtension, generalNameKind, keyUsageBit, oidEd25519, readBasicConstraints, readCertificateFields, readCommonNames,
  readExtendedKeyUsage, readKeyUsage, readSubjectAltNames, type CertificateFields,
} from './certificate-fields.js';
import { deviceSanUri, oidClientAuth } from './device-profile.js';
import { normalizeSerialHex } from './serial-number.js';
import type { x509 } from './x509-provider.js';

/** Peer-supplied intermediates beyond this are refused: our hierarchy has one. */
export const chainCertificatesMax = 4;
/** CA certificates above the leaf; root + one intermediate need 2. */
const issuerDepthMax = 3;

/** A CA certificate as PEM, as @peculiar/x509's object (what the CA side holds) or as node:crypto's. */
export type TrustAnchor = string | x509.X509Certificate | X509Certificate;

export interface VerifyDeviceCertificateOptions {
  /** The device certificate as PEM text; give this or `certDer`. */
  certPem?: string;
  /** The device certificate as DER bytes (what a TLS stack hands over); give this or `certPem`. */
  certDer?: Uint8Array;
  /** Intermediates the peer presented. Untrusted: they only help build a path to an anchor. */
  chainPems?: readonly string[];
  /**
   * Our CA certificates (the online intermediate and the root). A path must end at one of them.
   * Objects are read once and remembered; pass objects, not PEM, on a path run per connection.
   */
  trustAnchors: readonly TrustAnchor[];
  now: Date;
  /** Asked with the normalized serial (lowercase hex, no leading zeros). */
  isRevoked: (serialHex: string) => boolean | Promise<boolean>;
}

export interface VerifiedDeviceCertificate {
  readonly deviceId: string;
  readonly serialHex: string;
  readonly notAfter: Date;
}

/** node:crypto's certificate (signature checks, the public key) and the fields read from its DER. */
interface ParsedCertificate {
  readonly node: X509Certificate;
  readonly fields: CertificateFields;
}

/**
 * The gateway's check of a device's client certificate. Order: parse, chain to an anchor
 * (TRUST_CERT_UNTRUSTED), every certificate in the path within its validity
 * (TRUST_CERT_EXPIRED / TRUST_CERT_NOT_YET_VALID), device profile (TRUST_CERT_PROFILE),
 * CN/SAN identity (TRUST_CERT_IDENTITY_MISMATCH), then revocation (TRUST_CERT_REVOKED).
 *
 * node:crypto (OpenSSL) parses the certificate and checks signatures; the fields it does not
 * expose are read from the DER by certificate-fields.ts. It used @peculiar/x509, whose parse
 * cost the gateway tens of KiB of allocator memory per connection (docs/benchmarks.md); that
 * library still issues certificates on the CA side.
 */
export async function verifyDeviceCertificate(options: VerifyDeviceCertificateOptions): Promise<VerifiedDeviceCertificate> {
  const leaf = parseLeaf(options);
  const anchors = options.trustAnchors.map(parseAnchor);
  if (anchors.length === 0) throw new SdcError('TRUST_INVALID_ARGUMENT', 'at least one trust anchor is required');
  const chain = options.chainPems ?? [];
  if (chain.length > chainCertificatesMax) {
    throw new SdcError('TRUST_CERT_UNTRUSTED', `more than ${chainCertificatesMax} chain certificates presented`);
  }
  const presented = chain.map((pem) => parseCa(pem, 'chain certificate'));

  const path = buildPath(leaf, anchors, presented);
  path.forEach((certificate, position) => requireWithinValidity(certificate.fields, options.now, position === 0 ? 'device' : 'issuer'));
  requireDeviceProfile(leaf);
  const deviceId = requireIdentity(leaf.fields);
  const serialHex = normalizeSerialHex(leaf.fields.serialHex);
  if (await options.isRevoked(serialHex)) {
    throw new SdcError('TRUST_CERT_REVOKED', `certificate ${serialHex} of device ${deviceId} is revoked`, { serialHex, deviceId });
  }
  return { deviceId, serialHex, notAfter: new Date(leaf.fields.notAfterMs) };
}

function parseLeaf(options: VerifyDeviceCertificateOptions): ParsedCertificate {
  const input = options.certPem ?? options.certDer;
  if (input === undefined || (options.certPem !== undefined && options.certDer !== undefined)) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', 'give exactly one of certPem and certDer');
  }
  return parse(input, 'device certificate');
}

/** Parsed anchors by object: the gateway passes the same objects for every connection. */
const parsedAnchors = new WeakMap<object, ParsedCertificate>();

function parseAnchor(anchor: TrustAnchor): ParsedCertificate {
  if (typeof anchor === 'string') return parse(anchor, 'trust anchor');
  const known = parsedAnchors.get(anchor);
  if (known) return known;
  const parsed = anchor instanceof X509Certificate ? withFields(anchor, 'trust anchor') : parse(new Uint8Array(anchor.rawData), 'trust anchor');
  parsedAnchors.set(anchor, parsed);
  return parsed;
}

function parseCa(pem: string, what: string): ParsedCertificate {
  return parse(pem, what);
}

function parse(input: string | Uint8Array, what: string): ParsedCertificate {
  let node: X509Certificate;
  try {
    node = new X509Certificate(typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', `${what} cannot be parsed`, {}, { cause: error });
  }
  // OpenSSL reads the first certificate and ignores what follows; DER from a peer must be exactly one.
  if (typeof input !== 'string' && node.raw.length !== input.length) throw new SdcError('TRUST_CERT_INVALID', `${what} has bytes after the certificate`);
  return withFields(node, what);
}

function withFields(node: X509Certificate, what: string): ParsedCertificate {
  try {
    return { node, fields: readCertificateFields(node.raw) };
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', `${what} cannot be parsed`, {}, { cause: error });
  }
}

/**
 * Walks issuer links from the leaf until it reaches a trust anchor. An issuer is accepted only if
 * its subject matches, its signature over the child verifies, and it is a CA allowed to sign at
 * this depth (basicConstraints cA + pathLen, keyUsage keyCertSign).
 */
function buildPath(leaf: ParsedCertificate, anchors: readonly ParsedCertificate[], presented: readonly ParsedCertificate[]): ParsedCertificate[] {
  const candidates = [...anchors, ...presented];
  const path = [leaf];
  let child = leaf;
  for (let depth = 0; depth < issuerDepthMax; depth++) {
    const issuer = findIssuer(child, candidates);
    if (!issuer) throw new SdcError('TRUST_CERT_UNTRUSTED', 'certificate is not signed by a trusted CA');
    requireCaAllowedToSign(issuer, depth);
    path.push(issuer);
    if (anchors.some((anchor) => sameCertificate(anchor, issuer))) return path;
    child = issuer;
  }
  throw new SdcError('TRUST_CERT_UNTRUSTED', 'no path to a trusted CA within the depth limit');
}

function findIssuer(child: ParsedCertificate, candidates: readonly ParsedCertificate[]): ParsedCertificate | undefined {
  const issuerName = Buffer.from(child.fields.issuerName);
  for (const candidate of candidates) {
    if (!issuerName.equals(candidate.fields.subjectName) || sameCertificate(candidate, child)) continue;
    if (candidate.node.publicKey.asymmetricKeyType !== 'ed25519') continue;
    let verified = false;
    try {
      verified = child.node.verify(candidate.node.publicKey);
    } catch {
      verified = false;
    }
    if (verified) return candidate;
  }
  return undefined;
}

function sameCertificate(a: ParsedCertificate, b: ParsedCertificate): boolean {
  return a.node === b.node || a.node.raw.equals(b.node.raw);
}

/** `intermediatesBelow` CA certificates sit between this issuer and the leaf. */
function requireCaAllowedToSign(issuer: ParsedCertificate, intermediatesBelow: number): void {
  const constraintsExtension = findExtension(issuer.fields, extensionOid.basicConstraints);
  const keyUsageExtension = findExtension(issuer.fields, extensionOid.keyUsage);
  const constraints = constraintsExtension === undefined ? undefined : readBasicConstraints(constraintsExtension);
  const keyUsage = keyUsageExtension === undefined ? undefined : readKeyUsage(keyUsageExtension);
  const pathLengthOk = constraints?.pathLength === undefined || constraints.pathLength >= intermediatesBelow;
  if (!constraints?.ca || !pathLengthOk || keyUsage === undefined || (keyUsage & keyUsageBit.keyCertSign) === 0) {
    throw new SdcError('TRUST_CERT_UNTRUSTED', `issuer '${issuer.node.subject.replaceAll('\n', ', ')}' is not a CA allowed to sign at this depth`);
  }
}

function requireWithinValidity(fields: CertificateFields, now: Date, which: 'device' | 'issuer'): void {
  if (now.getTime() < fields.notBeforeMs) {
    throw new SdcError('TRUST_CERT_NOT_YET_VALID', `${which} certificate is valid from ${new Date(fields.notBeforeMs).toISOString()}`, { which });
  }
  if (now.getTime() > fields.notAfterMs) {
    throw new SdcError('TRUST_CERT_EXPIRED', `${which} certificate expired at ${new Date(fields.notAfterMs).toISOString()}`, { which });
  }
}

// Extensions the profile knows; any other extension marked critical must be refused (RFC 5280 4.2).
const knownExtensionOids = new Set<string>(Object.values(extensionOid));

function requireDeviceProfile(leaf: ParsedCertificate): void {
  const refuse = (why: string): never => { throw new SdcError('TRUST_CERT_PROFILE', `device certificate ${why}`); };
  const { fields } = leaf;
  if (leaf.node.publicKey.asymmetricKeyType !== 'ed25519') refuse('key is not Ed25519');
  if (fields.signatureAlgorithmOid !== oidEd25519 || fields.tbsSignatureAlgorithmOid !== oidEd25519) refuse('is not signed with Ed25519');
  const constraints = findExtension(fields, extensionOid.basicConstraints);
  if (constraints !== undefined && readBasicConstraints(constraints).ca) refuse('is a CA certificate');
  const keyUsageExtension = findExtension(fields, extensionOid.keyUsage);
  const keyUsage = keyUsageExtension === undefined ? 0 : readKeyUsage(keyUsageExtension);
  if ((keyUsage & keyUsageBit.digitalSignature) === 0) refuse('lacks keyUsage digitalSignature');
  if ((keyUsage & (keyUsageBit.keyCertSign | keyUsageBit.cRLSign)) !== 0) refuse('may sign certificates or CRLs');
  const extendedKeyUsageExtension = findExtension(fields, extensionOid.extendedKeyUsage);
  const extendedKeyUsage = extendedKeyUsageExtension === undefined ? [] : readExtendedKeyUsage(extendedKeyUsageExtension);
  if (extendedKeyUsage.length !== 1 || extendedKeyUsage[0] !== oidClientAuth) refuse('extended key usage is not exactly clientAuth');
  for (const extension of fields.extensions) {
    if (extension.critical && !knownExtensionOids.has(extension.oid)) refuse(`has unknown critical extension ${extension.oid}`);
  }
}

function requireIdentity(fields: CertificateFields): string {
  const commonNames = readCommonNames(fields.subjectName);
  const deviceId = commonNames.length === 1 ? commonNames[0]! : '';
  if (!isDeviceId(deviceId)) {
    throw new SdcError('TRUST_CERT_IDENTITY_MISMATCH', 'subject must have exactly one CN holding a valid device id');
  }
  const sanExtension = findExtension(fields, extensionOid.subjectAltName);
  const names = sanExtension === undefined ? [] : readSubjectAltNames(sanExtension);
  const only = names.length === 1 ? names[0] : undefined;
  if (!only || only.kind !== generalNameKind.uri || only.text !== deviceSanUri(deviceId)) {
    throw new SdcError('TRUST_CERT_IDENTITY_MISMATCH', `SAN must be exactly the URI ${deviceSanUri(deviceId)}`, { deviceId });
  }
  return deviceId;
}

/**
 * The device id a certificate's subject names, read without verifying anything, for the refusal
 * of a certificate that failed verification (the AUTH_ERROR frame carries the id): only a single
 * CN that follows the protocol's device-id rule; undefined for anything else, unparseable included.
 */
export function unverifiedDeviceIdOf(der: Uint8Array): string | undefined {
  try {
    const names = readCommonNames(readCertificateFields(der).subjectName);
    return names.length === 1 && isDeviceId(names[0]!) ? names[0] : undefined;
  } catch {
    return undefined;
  }
}
