import { SdcError } from '../core/errors/index.js';
import { isDeviceId } from '../core/protocol/device-id.js';
import { deviceSanUri, oidClientAuth, oidCommonName } from './device-profile.js';
import { normalizeSerialHex } from './serial-number.js';
import { ed25519Algorithm, parseCertificate, x509 } from './x509-provider.js';

/** Peer-supplied intermediates beyond this are refused: our hierarchy has one. */
export const chainCertificatesMax = 4;
/** CA certificates above the leaf; root + one intermediate need 2. */
const issuerDepthMax = 3;

export interface VerifyDeviceCertificateOptions {
  /** The device certificate as PEM text; give this or `certDer`. */
  certPem?: string;
  /** The device certificate as DER bytes (what a TLS stack hands over); give this or `certPem`. */
  certDer?: Uint8Array;
  /** Intermediates the peer presented. Untrusted: they only help build a path to an anchor. */
  chainPems?: readonly string[];
  /** Our CA certificates (the online intermediate and the root). A path must end at one of them. */
  trustAnchors: ReadonlyArray<string | x509.X509Certificate>;
  now: Date;
  /** Asked with the normalized serial (lowercase hex, no leading zeros). */
  isRevoked: (serialHex: string) => boolean | Promise<boolean>;
}

export interface VerifiedDeviceCertificate {
  readonly deviceId: string;
  readonly serialHex: string;
  readonly notAfter: Date;
}

/**
 * The gateway's check of a device's client certificate. Order: parse, chain to an anchor
 * (TRUST_CERT_UNTRUSTED), every certificate in the path within its validity
 * (TRUST_CERT_EXPIRED / TRUST_CERT_NOT_YET_VALID), device profile (TRUST_CERT_PROFILE),
 * CN/SAN identity (TRUST_CERT_IDENTITY_MISMATCH), then revocation (TRUST_CERT_REVOKED).
 */
export async function verifyDeviceCertificate(options: VerifyDeviceCertificateOptions): Promise<VerifiedDeviceCertificate> {
  const leaf = parseLeaf(options);
  const anchors = options.trustAnchors.map((a) => (typeof a === 'string' ? parseCa(a, 'trust anchor') : a));
  if (anchors.length === 0) throw new SdcError('TRUST_INVALID_ARGUMENT', 'at least one trust anchor is required');
  const chain = options.chainPems ?? [];
  if (chain.length > chainCertificatesMax) {
    throw new SdcError('TRUST_CERT_UNTRUSTED', `more than ${chainCertificatesMax} chain certificates presented`);
  }
  const presented = chain.map((pem) => parseCa(pem, 'chain certificate'));

  const path = await buildPath(leaf, anchors, presented);
  path.forEach((certificate, position) => requireWithinValidity(certificate, options.now, position === 0 ? 'device' : 'issuer'));
  requireDeviceProfile(leaf);
  const deviceId = requireIdentity(leaf);
  const serialHex = normalizeSerialHex(leaf.serialNumber);
  if (await options.isRevoked(serialHex)) {
    throw new SdcError('TRUST_CERT_REVOKED', `certificate ${serialHex} of device ${deviceId} is revoked`, { serialHex, deviceId });
  }
  return { deviceId, serialHex, notAfter: leaf.notAfter };
}

function parseLeaf(options: VerifyDeviceCertificateOptions): x509.X509Certificate {
  const input = options.certPem ?? options.certDer;
  if (input === undefined || (options.certPem !== undefined && options.certDer !== undefined)) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', 'give exactly one of certPem and certDer');
  }
  try {
    return parseCertificate(input);
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', 'device certificate cannot be parsed', {}, { cause: error });
  }
}

function parseCa(pem: string, what: string): x509.X509Certificate {
  try {
    return parseCertificate(pem);
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', `${what} cannot be parsed`, {}, { cause: error });
  }
}

/**
 * Walks issuer links from the leaf until it reaches a trust anchor. An issuer is accepted only if
 * its subject matches, its signature over the child verifies, and it is a CA allowed to sign at
 * this depth (basicConstraints cA + pathLen, keyUsage keyCertSign).
 */
async function buildPath(
  leaf: x509.X509Certificate,
  anchors: readonly x509.X509Certificate[],
  presented: readonly x509.X509Certificate[],
): Promise<x509.X509Certificate[]> {
  const candidates = [...anchors, ...presented];
  const path = [leaf];
  let child = leaf;
  for (let depth = 0; depth < issuerDepthMax; depth++) {
    const issuer = await findIssuer(child, candidates);
    if (!issuer) throw new SdcError('TRUST_CERT_UNTRUSTED', 'certificate is not signed by a trusted CA');
    requireCaAllowedToSign(issuer, depth);
    path.push(issuer);
    if (anchors.some((anchor) => sameCertificate(anchor, issuer))) return path;
    child = issuer;
  }
  throw new SdcError('TRUST_CERT_UNTRUSTED', 'no path to a trusted CA within the depth limit');
}

async function findIssuer(child: x509.X509Certificate, candidates: readonly x509.X509Certificate[]): Promise<x509.X509Certificate | undefined> {
  for (const candidate of candidates) {
    if (candidate.subject !== child.issuer || sameCertificate(candidate, child)) continue;
    if (candidate.publicKey.algorithm.name !== ed25519Algorithm.name) continue;
    let verified = false;
    try {
      verified = await child.verify({ publicKey: candidate.publicKey, signatureOnly: true });
    } catch {
      verified = false;
    }
    if (verified) return candidate;
  }
  return undefined;
}

function sameCertificate(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

/** `intermediatesBelow` CA certificates sit between this issuer and the leaf. */
function requireCaAllowedToSign(issuer: x509.X509Certificate, intermediatesBelow: number): void {
  const constraints = issuer.getExtension(x509.BasicConstraintsExtension);
  const keyUsage = issuer.getExtension(x509.KeyUsagesExtension);
  const pathLengthOk = constraints?.pathLength === undefined || constraints.pathLength >= intermediatesBelow;
  if (!constraints?.ca || !pathLengthOk || !keyUsage || (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new SdcError('TRUST_CERT_UNTRUSTED', `issuer '${issuer.subject}' is not a CA allowed to sign at this depth`);
  }
}

function requireWithinValidity(certificate: x509.X509Certificate, now: Date, which: 'device' | 'issuer'): void {
  if (now.getTime() < certificate.notBefore.getTime()) {
    throw new SdcError('TRUST_CERT_NOT_YET_VALID', `${which} certificate is valid from ${certificate.notBefore.toISOString()}`, { which });
  }
  if (now.getTime() > certificate.notAfter.getTime()) {
    throw new SdcError('TRUST_CERT_EXPIRED', `${which} certificate expired at ${certificate.notAfter.toISOString()}`, { which });
  }
}

// Extensions the profile knows; any other extension marked critical must be refused (RFC 5280 4.2).
const knownExtensionOids = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.14', '2.5.29.35']);

function requireDeviceProfile(leaf: x509.X509Certificate): void {
  const refuse = (why: string): never => { throw new SdcError('TRUST_CERT_PROFILE', `device certificate ${why}`); };
  if (leaf.publicKey.algorithm.name !== ed25519Algorithm.name) refuse('key is not Ed25519');
  if (leaf.signatureAlgorithm.name !== ed25519Algorithm.name) refuse('is not signed with Ed25519');
  if (leaf.getExtension(x509.BasicConstraintsExtension)?.ca) refuse('is a CA certificate');
  const keyUsage = leaf.getExtension(x509.KeyUsagesExtension);
  if (!keyUsage || (keyUsage.usages & x509.KeyUsageFlags.digitalSignature) === 0) refuse('lacks keyUsage digitalSignature');
  if (keyUsage && (keyUsage.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0) refuse('may sign certificates or CRLs');
  const extendedKeyUsage = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (!extendedKeyUsage || extendedKeyUsage.usages.length !== 1 || extendedKeyUsage.usages[0] !== oidClientAuth) {
    refuse('extended key usage is not exactly clientAuth');
  }
  for (const extension of leaf.extensions) {
    if (extension.critical && !knownExtensionOids.has(extension.type)) refuse(`has unknown critical extension ${extension.type}`);
  }
}

function requireIdentity(leaf: x509.X509Certificate): string {
  const commonNames = leaf.subjectName.getField(oidCommonName);
  const deviceId = commonNames.length === 1 ? commonNames[0]! : '';
  if (!isDeviceId(deviceId)) {
    throw new SdcError('TRUST_CERT_IDENTITY_MISMATCH', 'subject must have exactly one CN holding a valid device id');
  }
  const names = leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  const only = names.length === 1 ? names[0] : undefined;
  if (!only || only.type !== 'url' || only.value !== deviceSanUri(deviceId)) {
    throw new SdcError('TRUST_CERT_IDENTITY_MISMATCH', `SAN must be exactly the URI ${deviceSanUri(deviceId)}`, { deviceId });
  }
  return deviceId;
}
