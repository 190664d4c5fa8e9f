import { createHash } from 'node:crypto';
import { access, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import type { RandomSource } from '../core/ports/ports.js';
import { ensurePrivateDirectory, fileExists, writeFileAtomic } from '../runtime/atomic-file.js';
import { createIntermediateCa, createRootCa, type CaMaterial } from './ca.js';
import { DeviceCertificateIssuer } from './device-issuer.js';
import { publicKeyOf } from './ed25519-keys.js';
import { readPrivateKeyFile, requirePrivateKeyFileMode, requireStrongPassphrase, writePrivateKeyFile } from './key-files.js';
import { importServingCaKey, issueServingCa } from './server-certificate.js';
import { parsePermittedNames } from './name-constraints.js';
import { JsonFileRevocationStore } from './revocation-file-store.js';
import { parseCertificate, x509 } from './x509-provider.js';

/** Certificates are public; world-readable is fine and lets a gateway user read the anchors. */
const certificateFileMode = 0o644;

/** The file layout of `<dataDir>/pki`, in one place for the CLI and services. */
export interface PkiPaths {
  readonly pkiDir: string;
  readonly rootCertPath: string;
  readonly rootKeyPath: string;
  readonly intermediateCertPath: string;
  readonly intermediateKeyPath: string;
  readonly revocationsPath: string;
  readonly pairingTokensPath: string;
  /** The control plane's current CRL (from SQL), rewritten at each revocation; gateways read it. */
  readonly crlPath: string;
  /** The ECDSA P-256 serving CA for browsers (decision 0006): its certificate is what a browser installs. */
  readonly servingCaCertPath: string;
  readonly servingCaKeyPath: string;
}

export function pkiPaths(dataDir: string): PkiPaths {
  const pkiDir = join(dataDir, 'pki');
  return {
    pkiDir,
    rootCertPath: join(pkiDir, 'root-ca.pem'),
    rootKeyPath: join(pkiDir, 'root-ca.key'),
    intermediateCertPath: join(pkiDir, 'intermediate-ca.pem'),
    intermediateKeyPath: join(pkiDir, 'intermediate-ca.key'),
    revocationsPath: join(pkiDir, 'revocations.json'),
    pairingTokensPath: join(pkiDir, 'pairing-tokens.json'),
    crlPath: join(pkiDir, 'crl.pem'),
    servingCaCertPath: join(pkiDir, 'serving-ca.pem'),
    servingCaKeyPath: join(pkiDir, 'serving-ca.key'),
  };
}

/**
 * How the root key file is written. There is no default: every caller says which, so that a plain
 * root key is always a choice made by name (`sdc pki init --insecure-plain-root-key`, for tests).
 * Only the root key is encrypted: the intermediate key signs device certificates and CRLs while
 * the services run, so it is online by design (plain PKCS#8, mode 0600, checked at start).
 */
/**
 * A person's passphrase, or one the code generated from random bytes (`generatedEntropyBits`:
 * written with fewer KDF iterations, trust/key-files.ts generatedPassphraseKdfIterations).
 */
export type RootKeyProtection = { readonly passphrase: string; readonly generatedEntropyBits?: number } | { readonly insecurePlain: true };

export interface InitPkiOptions {
  dataDir: string;
  now: Date;
  random: RandomSource;
  /** Replace existing CA files (and the revocations of the replaced intermediate). */
  force?: boolean;
  rootKey: RootKeyProtection;
  /** Names the serving CA may issue for, beside localhost and the loopback addresses (`--serving-name`). */
  servingNames?: readonly string[];
}

export interface InitializedPki {
  readonly paths: PkiPaths;
  readonly rootKeyEncrypted: boolean;
  readonly rootFingerprintSha256: string;
  readonly intermediateNotAfter: Date;
}

/**
 * Creates the root and the intermediate and writes both. This is the only code that ever holds
 * the root private key; once written, the root key file belongs offline (move it off the host).
 */
export async function initPki(options: InitPkiOptions): Promise<InitializedPki> {
  const paths = pkiPaths(options.dataDir);
  if (!options.force) await requireNoCa(paths);
  const passphrase = 'passphrase' in options.rootKey ? options.rootKey.passphrase : undefined;
  // Before any key exists: a weak passphrase is refused without leaving a half-written CA.
  if (passphrase !== undefined) requireStrongPassphrase(passphrase);
  const root = await createRootCa({ now: options.now, random: options.random });
  const intermediate = await createIntermediateCa({ root, now: options.now, random: options.random });
  await ensurePrivateDirectory(paths.pkiDir);
  const generatedBits = 'passphrase' in options.rootKey ? options.rootKey.generatedEntropyBits : undefined;
  await writePrivateKeyFile({
    path: paths.rootKeyPath, privateKey: root.privateKey,
    ...(passphrase === undefined ? {} : { passphrase }), ...(generatedBits === undefined ? {} : { generatedPassphraseEntropyBits: generatedBits }),
  });
  await writeFileAtomic(paths.rootCertPath, root.certificate.toString('pem') + '\n', { mode: certificateFileMode });
  await writePrivateKeyFile({ path: paths.intermediateKeyPath, privateKey: intermediate.privateKey });
  await writeFileAtomic(paths.intermediateCertPath, intermediate.certificate.toString('pem') + '\n', { mode: certificateFileMode });
  await createServingCa({ paths, now: options.now, random: options.random, ...(options.servingNames === undefined ? {} : { servingNames: options.servingNames }) });
  // Revocations name serials of the replaced intermediate; they mean nothing to the new one.
  if (options.force) await rm(paths.revocationsPath, { force: true });
  return {
    paths,
    rootKeyEncrypted: passphrase !== undefined,
    rootFingerprintSha256: certificateFingerprintSha256(root.certificate),
    intermediateNotAfter: intermediate.certificate.notAfter,
  };
}

/** Names every serving CA permits: the ones `sdc serve` puts in every API certificate. */
export const servingNamesAlways = ['localhost', '127.0.0.1', '::1'] as const;

/** The serving CA lives as long as the intermediate does by default (issued by `createIntermediateCa`): 5 years at most here. */
export const servingCaValidityMs = 5 * 366 * 24 * 60 * 60 * 1000;

/**
 * Creates the ECDSA P-256 serving CA (docs/decisions/0006-browser-serving-chain.md) in D/pki:
 * serving-ca.pem (public; the one file a browser installs) and serving-ca.key. The key is kept
 * like the intermediate's, unencrypted with mode 0600 and checked at every load, and not like
 * the root's, because `sdc serve` issues and renews the API's browser certificate with it at start,
 * as it does the Ed25519 one with the intermediate. It can sign server certificates only for
 * browsers that installed it; devices never trust it.
 */
export async function createServingCa(options: { paths: PkiPaths; now: Date; random: RandomSource; servingNames?: readonly string[] }): Promise<{ certPem: string }> {
  // Name constraints (critical): a browser trusting this CA trusts it for these names only.
  // `sdc serve` always names localhost and the loopback addresses, so they are always permitted.
  const permittedNames = parsePermittedNames([...new Set([...servingNamesAlways, ...(options.servingNames ?? [])])]);
  const ca = await issueServingCa({ commonName: 'SDC serving CA (browsers)', now: options.now, validityMs: servingCaValidityMs, random: options.random, permittedNames });
  await ensurePrivateDirectory(options.paths.pkiDir);
  await writePrivateKeyFile({ path: options.paths.servingCaKeyPath, privateKey: ca.privateKey });
  await writeFileAtomic(options.paths.servingCaCertPath, ca.certPem.trim() + '\n', { mode: certificateFileMode });
  return { certPem: ca.certPem };
}

/** The serving CA, or undefined in a data directory made before it existed (`sdc pki serving-ca` adds one). */
export async function loadServingCa(paths: PkiPaths): Promise<{ certPem: string; privateKey: CryptoKey } | undefined> {
  if (!(await fileExists(paths.servingCaCertPath))) return undefined;
  if (!(await fileExists(paths.servingCaKeyPath))) throw new SdcError('TRUST_PKI_MISSING', `${paths.servingCaKeyPath} does not exist beside ${paths.servingCaCertPath}`);
  const certificate = await readCertificateFile(paths.servingCaCertPath);
  await requirePrivateKeyFileMode(paths.servingCaKeyPath);
  const privateKey = await importServingCaKey(paths.servingCaKeyPath, await readFile(paths.servingCaKeyPath, 'utf8'));
  // A key from another CA would issue certificates no browser that installed this one accepts.
  const probe = new Uint8Array([0x73, 0x64, 0x63]);
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' } as const;
  const publicKey = await certificate.publicKey.export({ name: 'ECDSA', namedCurve: 'P-256' }, ['verify']);
  if (!(await crypto.subtle.verify(ecdsa, publicKey, await crypto.subtle.sign(ecdsa, privateKey, probe), probe))) {
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${paths.servingCaKeyPath} does not match the certificate's public key`);
  }
  return { certPem: certificate.toString('pem'), privateKey };
}

/** TRUST_PKI_EXISTS naming the CA files already there; `sdc pki init` asks it before asking for a passphrase. */
export async function requireNoCa(paths: PkiPaths): Promise<void> {
  const caFiles = [paths.rootCertPath, paths.rootKeyPath, paths.intermediateCertPath, paths.intermediateKeyPath];
  const existing = (await Promise.all(caFiles.map(async (p) => ((await fileExists(p)) ? p : undefined)))).filter((p) => p !== undefined);
  if (existing.length > 0) throw new SdcError('TRUST_PKI_EXISTS', `${existing.join(', ')} already exist (use --force to replace)`);
}

export interface IssuingPki {
  readonly paths: PkiPaths;
  readonly intermediate: CaMaterial;
  readonly rootCertificate: x509.X509Certificate;
  readonly revocations: JsonFileRevocationStore;
  readonly issuer: DeviceCertificateIssuer;
}

/** Loads what an online issuer needs: the intermediate (certificate + key) and the root certificate. Never the root key. */
export async function loadIssuingPki(options: { dataDir: string; random: RandomSource }): Promise<IssuingPki> {
  const paths = pkiPaths(options.dataDir);
  for (const path of [paths.rootCertPath, paths.intermediateCertPath, paths.intermediateKeyPath]) {
    if (!(await fileExists(path))) throw new SdcError('TRUST_PKI_MISSING', `${path} does not exist (run sdc pki init)`);
  }
  const rootCertificate = await readCertificateFile(paths.rootCertPath);
  const certificate = await readCertificateFile(paths.intermediateCertPath);
  const privateKey = await readPrivateKeyFile({ path: paths.intermediateKeyPath });
  await requireKeyMatchesCertificate(privateKey, certificate, paths.intermediateKeyPath);
  const intermediate: CaMaterial = { certificate, privateKey };
  const revocations = await JsonFileRevocationStore.open(paths.revocationsPath);
  const issuer = new DeviceCertificateIssuer({
    intermediate, rootCertificate, random: options.random, isRevoked: (serial) => revocations.isRevoked(serial),
  });
  return { paths, intermediate, rootCertificate, revocations, issuer };
}

export function certificateFingerprintSha256(certificate: x509.X509Certificate): string {
  const digest = createHash('sha256').update(new Uint8Array(certificate.rawData)).digest('hex');
  return digest.toUpperCase().match(/../g)!.join(':');
}

async function readCertificateFile(path: string): Promise<x509.X509Certificate> {
  try {
    return parseCertificate(await readFile(path, 'utf8'));
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', `${path} is not a PEM certificate`, {}, { cause: error });
  }
}

async function requireKeyMatchesCertificate(privateKey: CryptoKey, certificate: x509.X509Certificate, keyPath: string): Promise<void> {
  const spki = Buffer.from(await crypto.subtle.exportKey('spki', await publicKeyOf(privateKey)));
  if (!spki.equals(Buffer.from(certificate.publicKey.rawData))) {
    throw new SdcError('TRUST_KEY_FILE_INVALID', `${keyPath} does not match the certificate's public key`);
  }
}
