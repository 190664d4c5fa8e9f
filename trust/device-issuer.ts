import { SdcError } from '../core/errors/index.js';
import type { RandomSource } from '../core/ports/ports.js';
import type { CaMaterial } from './ca.js';
import { KeyObject, sign as signBytes } from 'node:crypto';
import { readCertificateFields } from './certificate-fields.js';
import { encodeDeviceTbsCertificate, encodeSignedCertificate, type DeviceCertificateIssuerParts } from './device-certificate-der.js';
import { parseDeviceCsr, type DeviceCsr } from './device-csr.js';
import {
  deviceCertificateValidityMsDefault, deviceCertificateValidityMsMax, notBeforeBackdateMs, oidClientAuth,
  requireDeviceId,
} from './device-profile.js';
import { toPem } from './pem.js';
import { randomSerialHex } from './serial-number.js';
import { verifyDeviceCertificate } from './verify-device-certificate.js';
import { parseCertificate, x509 } from './x509-provider.js';

export interface DeviceCertificateIssuerOptions {
  /** The online intermediate CA: certificate and private key. */
  intermediate: CaMaterial;
  /** The root CA certificate only; the root key is never given to a running service. */
  rootCertificate: x509.X509Certificate;
  random: RandomSource;
  /** Consulted on renewal: a revoked certificate cannot renew itself. */
  isRevoked: (serialHex: string) => boolean | Promise<boolean>;
}

export interface IssueDeviceCertificateOptions {
  csrPem: string;
  deviceId: string;
  now: Date;
  validityMs?: number;
}

export interface RenewDeviceCertificateOptions {
  currentCertPem: string;
  csrPem: string;
  now: Date;
  validityMs?: number;
}

export interface IssuedDeviceCertificate {
  readonly certificatePem: string;
  readonly serialHex: string;
  readonly deviceId: string;
  /** As the certificate states it: whole seconds (X.509 times have no milliseconds). */
  readonly notAfter: Date;
  /** The certified key, raw Ed25519 (32 bytes): callers need not parse the certificate again for it. */
  readonly publicKeyRaw: Uint8Array;
}

const secondMs = 1000;

/** Issues device certificates with the intermediate CA, following the profile in device-profile.ts. */
export class DeviceCertificateIssuer {
  readonly #intermediate: CaMaterial;
  readonly #rootCertificate: x509.X509Certificate;
  readonly #random: RandomSource;
  readonly #isRevoked: DeviceCertificateIssuerOptions['isRevoked'];
  /** Built once: the issuer's name and shared extensions (see #issuerParts). */
  #parts: Promise<DeviceCertificateIssuerParts> | undefined;
  /** node:crypto's one-shot Ed25519 sign on a KeyObject made once (about 0.05 ms a certificate). */
  readonly #signingKey: KeyObject;

  constructor(options: DeviceCertificateIssuerOptions) {
    this.#intermediate = options.intermediate;
    this.#rootCertificate = options.rootCertificate;
    this.#random = options.random;
    this.#isRevoked = options.isRevoked;
    this.#signingKey = KeyObject.from(options.intermediate.privateKey);
  }

  /** What a device needs to present and verify its chain: intermediate, then root. */
  chainPems(): [intermediatePem: string, rootPem: string] {
    return [this.#intermediate.certificate.toString('pem'), this.#rootCertificate.toString('pem')];
  }

  get intermediateCertificate(): x509.X509Certificate {
    return this.#intermediate.certificate;
  }

  /** Verifies the CSR (signature, Ed25519, CN = deviceId) and issues a certificate for its key. */
  async issueDeviceCertificate(options: IssueDeviceCertificateOptions): Promise<IssuedDeviceCertificate> {
    return this.issueForCsr({ ...options, csr: await parseDeviceCsr(options.csrPem) });
  }

  /** The same for a CSR its caller already parsed and verified (parseDeviceCsr): enrollment checks it before the token is spent. */
  async issueForCsr(options: { csr: DeviceCsr; deviceId: string; now: Date; validityMs?: number }): Promise<IssuedDeviceCertificate> {
    const deviceId = requireDeviceId(options.deviceId);
    const { csr } = options;
    if (csr.commonName !== deviceId) {
      throw new SdcError('TRUST_CSR_SUBJECT_MISMATCH', `CSR CN '${csr.commonName}' is not the device id '${deviceId}'`, { deviceId });
    }
    return this.#sign(csr.publicKeyRaw, deviceId, options.now, options.validityMs ?? deviceCertificateValidityMsDefault);
  }

  /**
   * Issues a successor for a certificate that is currently valid, ours and not revoked, for the
   * same device id; the new key may differ (key rotation). A certificate is public, so the caller
   * must only call this for a peer that proved possession of `currentCertPem`'s key (the mTLS
   * connection it arrived on).
   */
  async renewDeviceCertificate(options: RenewDeviceCertificateOptions): Promise<IssuedDeviceCertificate> {
    const current = await verifyDeviceCertificate({
      certPem: options.currentCertPem,
      trustAnchors: [this.#intermediate.certificate, this.#rootCertificate],
      now: options.now,
      isRevoked: this.#isRevoked,
    });
    if (!(await this.#issuedByUs(options.currentCertPem))) {
      throw new SdcError('TRUST_CERT_UNTRUSTED', 'current certificate was not issued by this intermediate');
    }
    return this.issueDeviceCertificate({
      csrPem: options.csrPem, deviceId: current.deviceId, now: options.now, validityMs: options.validityMs,
    });
  }

  /** True if `certPem` carries a valid signature of this issuer's intermediate key. */
  async #issuedByUs(certPem: string): Promise<boolean> {
    const certificate = parseCertificate(certPem);
    if (certificate.issuer !== this.#intermediate.certificate.subject) return false;
    return certificate.verify({ publicKey: this.#intermediate.certificate.publicKey, signatureOnly: true });
  }

  async #sign(publicKeyRaw: Uint8Array, deviceId: string, now: Date, validityMs: number): Promise<IssuedDeviceCertificate> {
    if (!Number.isSafeInteger(validityMs) || validityMs <= 0 || validityMs > deviceCertificateValidityMsMax) {
      throw new SdcError('TRUST_INVALID_ARGUMENT', `validityMs must be from 1 to ${deviceCertificateValidityMsMax}`);
    }
    const issuer = this.#intermediate.certificate;
    if (now < issuer.notBefore || now >= issuer.notAfter) {
      throw new SdcError('TRUST_CERT_EXPIRED', 'intermediate CA certificate is not valid at this time', { which: 'issuer' });
    }
    // A device certificate never outlives its issuer, so the chain stays verifiable to the end.
    // Whole seconds, as the certificate encodes them, so the returned notAfter is the certificate's.
    const wholeSeconds = (ms: number) => Math.floor(ms / secondMs) * secondMs;
    const notAfter = new Date(wholeSeconds(Math.min(now.getTime() + validityMs, issuer.notAfter.getTime())));
    const notBefore = new Date(Math.max(wholeSeconds(now.getTime() - notBeforeBackdateMs), issuer.notBefore.getTime()));
    const serialHex = randomSerialHex(this.#random);
    const tbs = encodeDeviceTbsCertificate(await this.#issuerParts(), {
      serialHex, notBeforeMs: notBefore.getTime(), notAfterMs: notAfter.getTime(), deviceId, publicKeyRaw,
    });
    const der = encodeSignedCertificate(tbs, new Uint8Array(signBytes(null, tbs, this.#signingKey)));
    return { certificatePem: toPem('CERTIFICATE', der), serialHex, deviceId, notAfter, publicKeyRaw };
  }

  #issuerParts(): Promise<DeviceCertificateIssuerParts> {
    this.#parts ??= deviceCertificateIssuerParts(this.#intermediate.certificate);
    return this.#parts;
  }
}

/**
 * The parts every device certificate of `intermediate` shares: its name as its own certificate
 * encodes it (RFC 5280 path building compares names byte for byte) and the profile's fixed
 * extensions, encoded once (the authority key identifier also hashes the issuer's key).
 */
export async function deviceCertificateIssuerParts(intermediate: x509.X509Certificate): Promise<DeviceCertificateIssuerParts> {
  const extensions = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([oidClientAuth], false),
    await x509.AuthorityKeyIdentifierExtension.create(intermediate.publicKey),
  ];
  return {
    issuerNameDer: readCertificateFields(new Uint8Array(intermediate.rawData)).subjectName,
    fixedExtensionsDer: extensions.map((extension) => new Uint8Array(extension.rawData)),
  };
}
