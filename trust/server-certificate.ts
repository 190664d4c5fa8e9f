import { createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import { SdcError } from '../core/errors/index.js';
import type { RandomSource } from '../core/ports/ports.js';
import { notBeforeBackdateMs, oidCommonName } from './device-profile.js';
import { exportPkcs8Der, generateEd25519KeyPair } from './ed25519-keys.js';
import { decodeNameConstraints, encodeNameConstraints, oidNameConstraints, type PermittedNames } from './name-constraints.js';
import { toPem } from './pem.js';
import { randomSerialHex, serialHexForEncoding } from './serial-number.js';
import { ed25519Algorithm, parseCertificate, x509 } from './x509-provider.js';

/**
 * The server certificate profile (HTTPS control plane and WSS gateway): an Ed25519 leaf issued by
 * the online intermediate, EKU serverAuth only, and the names clients dial as DNS / IP SANs
 * (TLS clients ignore the CN when a SAN is present; it is set to the first name for people).
 *
 * Browsers take no Ed25519 anywhere in a TLS chain (docs/decisions/0006-browser-serving-chain.md,
 * measured with Chromium), so the same profile can also be issued as an ECDSA P-256 leaf by an
 * ECDSA P-256 serving CA (`issueServingCa`): the chain a browser can be made to trust. The API port
 * presents both (`apiTlsCertificates`): Ed25519 to clients that offer it, ECDSA to browsers.
 */
export const oidServerAuth = '1.3.6.1.5.5.7.3.1';
export const serverCertificateValidityMsDefault = 90 * 24 * 60 * 60 * 1000;
/** The CA/Browser Forum ceiling; a longer server certificate would be rotated less than we want. */
export const serverCertificateValidityMsMax = 398 * 24 * 60 * 60 * 1000;
export const serverNamesMax = 32;
const hostnameLengthMax = 253;
const hostnamePattern = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface IssueServerCertificateOptions {
  intermediateCertPem: string;
  intermediateKey: CryptoKey;
  /** DNS names, e.g. `localhost`; no wildcards. */
  hostnames: readonly string[];
  /** IPv4 or IPv6 literals, e.g. `127.0.0.1`, `::1`. */
  ipAddresses: readonly string[];
  now: Date;
  validityMs: number;
  /** The server key's seed and the serial come from here, so a seeded simulation replays them. */
  random: RandomSource;
  /**
   * The leaf's key (default Ed25519). An ECDSA P-256 key comes from WebCrypto's own generator: it
   * cannot be derived from `random`, so only Ed25519 server keys replay under a seed.
   */
  keyAlgorithm?: ServerKeyAlgorithm;
}

export type ServerKeyAlgorithm = 'Ed25519' | 'ECDSA-P256';
const ecdsaP256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ecdsaSha256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** The signature the issuer's key makes: Ed25519, or ECDSA with SHA-256 for a P-256 serving CA. */
function signingAlgorithmOf(issuerKey: CryptoKey): typeof ed25519Algorithm | typeof ecdsaSha256 {
  if (issuerKey.algorithm.name === 'Ed25519') return ed25519Algorithm;
  if (issuerKey.algorithm.name === 'ECDSA' && (issuerKey.algorithm as EcKeyAlgorithm).namedCurve === 'P-256') return ecdsaSha256;
  throw new SdcError('TRUST_INVALID_ARGUMENT', `an issuer key must be Ed25519 or ECDSA P-256, not ${issuerKey.algorithm.name}`);
}

async function generateServerKeyPair(algorithm: ServerKeyAlgorithm, random: RandomSource): Promise<CryptoKeyPair> {
  if (algorithm === 'Ed25519') return generateEd25519KeyPair(random);
  return crypto.subtle.generateKey(ecdsaP256, true, ['sign', 'verify']);
}

export interface IssuedServerCertificate {
  certPem: string;
  /** PKCS#8 PEM of the fresh Ed25519 server key; the caller stores it with mode 0600. */
  keyPem: string;
}

/** Issues a fresh key and a serverAuth certificate for it, signed by the intermediate. */
export async function issueServerCertificate(options: IssueServerCertificateOptions): Promise<IssuedServerCertificate> {
  const { hostnames, ipAddresses, validityMs, now } = options;
  if (!Number.isSafeInteger(validityMs) || validityMs <= 0 || validityMs > serverCertificateValidityMsMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `validityMs must be from 1 to ${serverCertificateValidityMsMax}`);
  }
  if (hostnames.length + ipAddresses.length === 0 || hostnames.length + ipAddresses.length > serverNamesMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `a server certificate needs 1 to ${serverNamesMax} names`);
  }
  for (const name of hostnames) {
    if (name.length > hostnameLengthMax || !hostnamePattern.test(name)) {
      throw new SdcError('TRUST_INVALID_ARGUMENT', `'${name}' is not a DNS host name`);
    }
  }
  for (const address of ipAddresses) {
    if (isIP(address) === 0) throw new SdcError('TRUST_INVALID_ARGUMENT', `'${address}' is not an IP address`);
  }
  let issuer: x509.X509Certificate;
  try {
    issuer = parseCertificate(options.intermediateCertPem);
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', 'intermediate CA certificate cannot be parsed', {}, { cause: error });
  }
  if (now < issuer.notBefore || now >= issuer.notAfter) {
    throw new SdcError('TRUST_CERT_EXPIRED', 'intermediate CA certificate is not valid at this time', { which: 'issuer' });
  }
  // Like device certificates: never outlive the issuer, backdated a little for clock skew.
  const notAfter = new Date(Math.min(now.getTime() + validityMs, issuer.notAfter.getTime()));
  const notBefore = new Date(Math.max(now.getTime() - notBeforeBackdateMs, issuer.notBefore.getTime()));
  const keys = await generateServerKeyPair(options.keyAlgorithm ?? 'Ed25519', options.random);
  const publicKey = await x509.PublicKey.create(keys.publicKey);
  const commonName = hostnames[0] ?? ipAddresses[0]!;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHexForEncoding(randomSerialHex(options.random)),
    subject: [{ [oidCommonName]: [commonName] }],
    issuer: issuer.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: options.intermediateKey,
    signingAlgorithm: signingAlgorithmOf(options.intermediateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([oidServerAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...hostnames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ], false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
    ],
  });
  const keyPem = toPem('PRIVATE KEY', await exportPkcs8Der(keys.privateKey));
  return { certPem: certificate.toString('pem'), keyPem };
}

/** A serving CA lives as long as this at most; it only issues short-lived (at most 398 days) server certificates. */
export const servingCaValidityMsMax = 10 * 366 * 24 * 60 * 60 * 1000;

export interface IssuedServingCa {
  certPem: string;
  /** Signs server certificates (`issueServerCertificate` with `intermediateKey` = this). */
  privateKey: CryptoKey;
  /** PKCS#8 PEM of the key; the caller stores it with mode 0600. */
  keyPem: string;
}

/**
 * A self-signed ECDSA P-256 CA for TLS server certificates only (path length 0, keyCertSign and
 * cRLSign): the one kind of chain browsers verify (docs/decisions/0006-browser-serving-chain.md).
 * Devices never see it: their certificates, the gateway's mutual TLS and every signature of the
 * protocol stay Ed25519 under our root.
 */
export async function issueServingCa(options: {
  commonName: string; now: Date; validityMs: number; random: RandomSource;
  /**
   * The names its leaves may carry (critical name constraints): a browser that trusts the CA then
   * trusts it for these DNS subtrees and IP ranges only, not for any site it could sign.
   * Leaving it out makes an unconstrained CA (only for tests that need one to compare).
   */
  permittedNames?: PermittedNames;
}): Promise<IssuedServingCa> {
  const { now, validityMs } = options;
  if (!Number.isSafeInteger(validityMs) || validityMs <= 0 || validityMs > servingCaValidityMsMax) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `validityMs must be from 1 to ${servingCaValidityMsMax}`);
  }
  if (options.commonName.length === 0 || options.commonName.length > 64) throw new SdcError('TRUST_INVALID_ARGUMENT', 'a CA common name is 1 to 64 characters');
  const keys = await crypto.subtle.generateKey(ecdsaP256, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHexForEncoding(randomSerialHex(options.random)),
    name: [{ [oidCommonName]: [options.commonName] }],
    notBefore: new Date(now.getTime() - notBeforeBackdateMs),
    notAfter: new Date(now.getTime() + validityMs),
    keys,
    signingAlgorithm: ecdsaSha256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(options.permittedNames === undefined ? [] : [new x509.Extension(oidNameConstraints, true, encodeNameConstraints(options.permittedNames))]),
    ],
  });
  return { certPem: certificate.toString('pem'), privateKey: keys.privateKey, keyPem: toPem('PRIVATE KEY', await exportPkcs8Der(keys.privateKey)) };
}

/** The serving CA's permitted names, or undefined for a CA made without constraints (before they existed). */
export function servingCaPermittedNames(certPem: string): PermittedNames | undefined {
  const extension = parseCertificate(certPem).extensions.find((candidate) => candidate.type === oidNameConstraints);
  return extension === undefined ? undefined : decodeNameConstraints(extension.value);
}

/** The serving CA's key (D/pki/serving-ca.key): an unencrypted P-256 PKCS#8 PEM, read back as a WebCrypto signing key. */
export async function importServingCaKey(path: string, keyPem: string): Promise<CryptoKey> {
  let der: Buffer;
  try {
    const keyObject = createPrivateKey({ key: keyPem, format: 'pem' });
    if (keyObject.asymmetricKeyType !== 'ec' || keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} holds a ${keyObject.asymmetricKeyType ?? 'unknown'} key, not ECDSA P-256`, { path });
    }
    der = keyObject.export({ format: 'der', type: 'pkcs8' });
  } catch (error) {
    if (error instanceof SdcError) throw error;
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${path} is not a PEM private key`, { path }, { cause: error });
  }
  try {
    return await crypto.subtle.importKey('pkcs8', new Uint8Array(der), ecdsaP256, false, ['sign']);
  } finally {
    der.fill(0);
  }
}

/**
 * The signature algorithms the API port offers, Ed25519 first. With two certificates on one port
 * OpenSSL takes the first of these the client also offers (server preference): Node clients (the
 * CLI, agents, tests) offer Ed25519 and keep the Ed25519 chain under our root; browsers offer no
 * Ed25519 and get the ECDSA P-256 chain under the serving CA (docs/decisions/0006). The list also
 * bounds what client certificates may be signed with (devices renewing: Ed25519).
 */
export const apiSignatureAlgorithms = [
  'ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384', 'ecdsa_secp521r1_sha512',
  'rsa_pss_rsae_sha256', 'rsa_pss_rsae_sha384', 'rsa_pss_rsae_sha512', 'rsa_pss_pss_sha256', 'rsa_pss_pss_sha384', 'rsa_pss_pss_sha512',
  'rsa_pkcs1_sha256', 'rsa_pkcs1_sha384', 'rsa_pkcs1_sha512',
].join(':');

/**
 * Node TLS options for the API port: the Ed25519 certificate with its intermediate, and when a
 * serving-CA certificate exists, that one as well (one chain per key; OpenSSL picks by the
 * client's signature algorithms). Without one, exactly the Ed25519 certificate as before.
 */
export function apiTlsCertificates(options: {
  serverTls: { certPem: string; keyPem: string };
  intermediateCaPem: string;
  browserTls?: { certPem: string; keyPem: string } | undefined;
}): { key: string | string[]; cert: string | string[]; sigalgs?: string; honorCipherOrder?: boolean } {
  const ed25519Chain = `${options.serverTls.certPem.trim()}\n${options.intermediateCaPem.trim()}\n`;
  if (options.browserTls === undefined) return { key: options.serverTls.keyPem, cert: ed25519Chain };
  return {
    key: [options.serverTls.keyPem, options.browserTls.keyPem],
    cert: [ed25519Chain, `${options.browserTls.certPem.trim()}\n`],
    sigalgs: apiSignatureAlgorithms,
    honorCipherOrder: true,
  };
}
