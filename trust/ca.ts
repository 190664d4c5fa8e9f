import { SdcError } from '../core/errors/index.js';
import type { RandomSource } from '../core/ports/ports.js';
import { generateEd25519KeyPair } from './ed25519-keys.js';
import { oidCommonName } from './device-profile.js';
import { randomSerialHex, serialHexForEncoding } from './serial-number.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

/**
 * The CA hierarchy: an offline root (pathLen 1) signs one online intermediate (pathLen 0),
 * which issues device certificates.
 *
 * The root private key is used in exactly one place: `sdc pki init`, to sign the intermediate.
 * No running service (control plane, gateway, agent) loads it; services get the root
 * *certificate* as a trust anchor and the intermediate key to issue. A compromised service
 * therefore exposes the intermediate, which the root can replace, never the root itself.
 */

export const rootCaValidityMsDefault = 20 * 365 * 24 * 60 * 60 * 1000;
export const intermediateCaValidityMsDefault = 3 * 365 * 24 * 60 * 60 * 1000;
export const rootCaCommonNameDefault = 'SDC Root CA';
export const intermediateCaCommonNameDefault = 'SDC Device Intermediate CA';

/** A CA's certificate and its private key, in memory. */
export interface CaMaterial {
  readonly certificate: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}

export interface CreateRootCaOptions {
  now: Date;
  random: RandomSource;
  validityMs?: number;
  commonName?: string;
}

const caKeyUsages = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

export async function createRootCa(options: CreateRootCaOptions): Promise<CaMaterial> {
  const validityMs = options.validityMs ?? rootCaValidityMsDefault;
  requirePositiveValidity(validityMs);
  const keys = await generateEd25519KeyPair(options.random);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHexForEncoding(randomSerialHex(options.random)),
    name: [{ [oidCommonName]: [options.commonName ?? rootCaCommonNameDefault] }],
    notBefore: options.now,
    notAfter: new Date(options.now.getTime() + validityMs),
    keys,
    signingAlgorithm: ed25519Algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(caKeyUsages, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate, privateKey: keys.privateKey };
}

export interface CreateIntermediateCaOptions {
  root: CaMaterial;
  now: Date;
  random: RandomSource;
  validityMs?: number;
  commonName?: string;
}

/** Signs a new intermediate with the root; its validity is clamped to end no later than the root's. */
export async function createIntermediateCa(options: CreateIntermediateCaOptions): Promise<CaMaterial> {
  const validityMs = options.validityMs ?? intermediateCaValidityMsDefault;
  requirePositiveValidity(validityMs);
  const { root, now } = options;
  if (now < root.certificate.notBefore || now >= root.certificate.notAfter) {
    throw new SdcError('TRUST_CERT_EXPIRED', 'root CA certificate is not valid at this time', { which: 'root' });
  }
  const keys = await generateEd25519KeyPair(options.random);
  const notAfterMs = Math.min(now.getTime() + validityMs, root.certificate.notAfter.getTime());
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHexForEncoding(randomSerialHex(options.random)),
    subject: [{ [oidCommonName]: [options.commonName ?? intermediateCaCommonNameDefault] }],
    issuer: root.certificate.subjectName,
    notBefore: now,
    notAfter: new Date(notAfterMs),
    publicKey: keys.publicKey,
    signingKey: root.privateKey,
    signingAlgorithm: ed25519Algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(caKeyUsages, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.certificate.publicKey),
    ],
  });
  return { certificate, privateKey: keys.privateKey };
}

function requirePositiveValidity(validityMs: number): void {
  if (!Number.isSafeInteger(validityMs) || validityMs <= 0) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', 'validityMs must be a positive safe integer');
  }
}
