import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import type { Clock, RandomSource } from '../../core/ports/ports.js';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../../runtime/ed25519-node.js';
import { createFileExclusive, ensurePrivateDirectory, fileExists, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { readEd25519SeedFile, requireParsablePrivateKeyPem, requirePrivateKeyFileMode } from '../../trust/key-files.js';
import { initPki, loadIssuingPki, loadServingCa, pkiPaths, type IssuingPki } from '../../trust/pki-directory.js';
import { namePermitted } from '../../trust/name-constraints.js';
import { apiTlsCertificates, issueServerCertificate, servingCaPermittedNames } from '../../trust/server-certificate.js';
import { parseCertificate } from '../../trust/x509-provider.js';
import { loadOrCreateArtifactKey, type ArtifactKey } from '../ota/encrypted-artifacts.js';

/** A service's own Ed25519 signing key, with its key id. */
export interface ServiceSigner {
  readonly kid: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** Everything a running deployment loads from its data directory (docs/architecture.md). */
export interface DeploymentMaterials {
  readonly dataDir: string;
  readonly rootCaPem: string;
  readonly intermediateCaPem: string;
  /** The intermediate's private key, for issuing device certificates (control plane only). */
  readonly intermediateKey: CryptoKey;
  readonly pki: IssuingPki;
  readonly serverTls: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
  /**
   * The API's second certificate, ECDSA P-256 under the serving CA, for browsers (decision 0006);
   * absent in a data directory without a serving CA, or when the caller asked for none (gateways).
   */
  readonly browserTls?: {
    readonly certPem: string; readonly keyPem: string; readonly servingCaPem: string; readonly servingCaPath: string;
    /** Server names left out of the browsers' certificate because the serving CA's name constraints do not permit them. */
    readonly namesOutsideServingCa: readonly string[];
  };
  readonly commandSigner: ServiceSigner;
  /**
   * The command key the current one replaced (`rotateCommandSigningKey`), kept so devices keep
   * verifying commands signed before the rotation and so the control plane can sign the kernels'
   * rotation to the new key with a key they hold; absent until the first rotation.
   */
  readonly previousCommandSigner?: ServiceSigner;
  readonly gatewaySigner: ServiceSigner;
  /** The X25519 key devices seal uploaded artifacts to (server/ota/encrypted-artifacts.ts, D/keys/artifact.key). */
  readonly artifactKey?: ArtifactKey;
}

export interface LoadDeploymentOptions {
  dataDir: string;
  clock: Clock;
  random: RandomSource;
  /** DNS names the HTTPS/WSS certificate covers (default: localhost). */
  serverHostnames?: readonly string[];
  /** IP addresses it covers (default: 127.0.0.1 and ::1). */
  serverIpAddresses?: readonly string[];
  /** Validity of a newly issued server certificate (default 90 days). */
  serverCertValidityMs?: number;
  /**
   * The TLS certificate's file name in D/tls/ (default `server`: D/tls/server.pem and .key). Each
   * process that shares a data directory needs its own: two processes asking for different names
   * in one file would re-issue it over each other at every start.
   */
  serverTlsName?: string;
  /** Issue (or renew) the browsers' ECDSA certificate from D/pki/serving-ca.* when there is one (default true; gateways say false). */
  browserCertificate?: boolean;
}

const dayMs = 24 * 3600 * 1000;
const provider = createNodeEd25519Provider();

/** A TLS file name: a file in D/tls/, never a path out of it. */
const tlsNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function deploymentPaths(dataDir: string, serverTlsName = 'server') {
  if (!tlsNamePattern.test(serverTlsName)) {
    throw new SdcError('TRUST_INVALID_ARGUMENT', `TLS certificate name ${JSON.stringify(serverTlsName)} is not 1 to 64 of [A-Za-z0-9._-]`);
  }
  return {
    keysDir: join(dataDir, 'keys'),
    commandKeyPath: join(dataDir, 'keys', 'command-signing.key'),
    previousCommandKeyPath: join(dataDir, 'keys', 'command-signing.previous.key'),
    gatewayKeyPath: join(dataDir, 'keys', 'gateway-signing.key'),
    tlsDir: join(dataDir, 'tls'),
    serverCertPath: join(dataDir, 'tls', `${serverTlsName}.pem`),
    serverKeyPath: join(dataDir, 'tls', `${serverTlsName}.key`),
    browserCertPath: join(dataDir, 'tls', `${serverTlsName}-browser.pem`),
    browserKeyPath: join(dataDir, 'tls', `${serverTlsName}-browser.key`),
    jwtKeysPath: join(dataDir, 'jwt', 'keys.json'),
    databasePath: join(dataDir, 'db', 'sdc.sqlite'),
  } as const;
}

/** Key id for a service key: role prefix plus the first 16 hex digits of SHA-256 of the public key. */
export function serviceKid(role: 'cp' | 'gateway', publicKey: Uint8Array): string {
  return `${role}:${createHash('sha256').update(publicKey).digest('hex').slice(0, 16)}`;
}

/**
 * Loads the deployment from `dataDir`. The CA must exist (`sdc pki init`); the service keys and
 * the server certificate are created on first use, and the server certificate is re-issued when
 * a third of its validity is left or it no longer covers the requested names.
 */
export async function loadDeployment(options: LoadDeploymentOptions): Promise<DeploymentMaterials> {
  const paths = deploymentPaths(options.dataDir, options.serverTlsName);
  const pki = await loadIssuingPki({ dataDir: options.dataDir, random: options.random });
  const pkiFiles = pkiPaths(options.dataDir);
  const rootCaPem = await readFile(pkiFiles.rootCertPath, 'utf8');
  const intermediateCaPem = await readFile(pkiFiles.intermediateCertPath, 'utf8');
  await ensurePrivateDirectory(paths.keysDir);
  const commandSigner = await loadOrCreateServiceKey(paths.commandKeyPath, 'cp', options.random);
  const previousCommandSigner = await loadServiceKeyIfPresent(paths.previousCommandKeyPath, 'cp');
  const gatewaySigner = await loadOrCreateServiceKey(paths.gatewayKeyPath, 'gateway', options.random);
  const artifactKey = await loadOrCreateArtifactKey(options.dataDir);
  const serverTls = await loadOrIssueServerCertificate(options, pki, intermediateCaPem);
  const browserTls = options.browserCertificate === false ? undefined : await loadOrIssueBrowserCertificate(options);
  return {
    dataDir: options.dataDir, rootCaPem, intermediateCaPem, intermediateKey: pki.intermediate.privateKey, pki,
    serverTls: { ...serverTls, caPem: `${intermediateCaPem.trim()}\n${rootCaPem.trim()}\n` },
    ...(browserTls === undefined ? {} : { browserTls }),
    commandSigner, gatewaySigner, artifactKey,
    ...(previousCommandSigner === undefined ? {} : { previousCommandSigner }),
  };
}

/**
 * Rotates the control plane's command-signing key in `dataDir`: the current key becomes the
 * previous one (replacing an older previous key) and a new current key is made; running control
 * planes pick it up at their next start. Devices learn the new key, and get the kernel rotation
 * signed by the keys their kernel may hold, at their next enrollment answer (renewal);
 * docs/kernel-contract.md, "Provisioning". Returns the kids.
 */
export async function rotateCommandSigningKey(dataDir: string, random: RandomSource): Promise<{ current: string; previous: string }> {
  const paths = deploymentPaths(dataDir);
  await ensurePrivateDirectory(paths.keysDir);
  const old = await loadOrCreateServiceKey(paths.commandKeyPath, 'cp', random);
  await writeFileAtomic(paths.previousCommandKeyPath, pemFromPrivateSeed(old.seed), { mode: privateFileMode });
  const seed = random.bytes(32);
  await writeFileAtomic(paths.commandKeyPath, pemFromPrivateSeed(seed), { mode: privateFileMode });
  return { current: serviceKid('cp', provider.publicKeyFromSeed(seed)), previous: old.kid };
}

/** The API port's Node TLS options: the Ed25519 chain, and the browsers' ECDSA one when there is one. */
export function apiTlsOptions(materials: Pick<DeploymentMaterials, 'serverTls' | 'intermediateCaPem' | 'browserTls'>): ReturnType<typeof apiTlsCertificates> {
  return apiTlsCertificates(materials);
}

/**
 * The browsers' certificate: an ECDSA P-256 leaf for the same names, from the serving CA, kept in
 * D/tls/NAME-browser.pem and renewed like the Ed25519 one (a third of its life left, a name
 * missing) and also when the serving CA was replaced.
 */
async function loadOrIssueBrowserCertificate(options: LoadDeploymentOptions): Promise<DeploymentMaterials['browserTls']> {
  const pkiFiles = pkiPaths(options.dataDir);
  const servingCa = await loadServingCa(pkiFiles);
  if (servingCa === undefined) return undefined;
  const paths = deploymentPaths(options.dataDir, options.serverTlsName);
  // A name the CA may not issue for would make browsers refuse the whole chain; it is left out
  // (and reported) rather than issued. localhost and loopback are always permitted.
  const permitted = servingCaPermittedNames(servingCa.certPem);
  const fits = (name: string): boolean => permitted === undefined || namePermitted(permitted, name);
  const wantedHostnames = [...(options.serverHostnames ?? ['localhost'])];
  const wantedIpAddresses = [...(options.serverIpAddresses ?? ['127.0.0.1', '::1'])];
  const hostnames = wantedHostnames.filter(fits);
  const ipAddresses = wantedIpAddresses.filter(fits);
  const namesOutsideServingCa = [...wantedHostnames, ...wantedIpAddresses].filter((name) => !fits(name));
  if (hostnames.length + ipAddresses.length === 0) return undefined;
  const nowMs = options.clock.nowMs();
  const shared = { servingCaPem: servingCa.certPem, servingCaPath: pkiFiles.servingCaCertPath, namesOutsideServingCa };
  if ((await fileExists(paths.browserCertPath)) && (await fileExists(paths.browserKeyPath))) {
    const certPem = await readFile(paths.browserCertPath, 'utf8');
    await requirePrivateKeyFileMode(paths.browserKeyPath);
    const keyPem = await readFile(paths.browserKeyPath, 'utf8');
    requireParsablePrivateKeyPem(paths.browserKeyPath, keyPem);
    const stillFits = serverCertificateStillFits(paths.browserCertPath, certPem, { nowMs, hostnames, ipAddresses });
    if (stillFits && new X509Certificate(certPem).verify(new X509Certificate(servingCa.certPem).publicKey)) return { certPem, keyPem, ...shared };
  }
  const issued = await issueServerCertificate({
    intermediateCertPem: servingCa.certPem, intermediateKey: servingCa.privateKey, hostnames, ipAddresses,
    now: new Date(nowMs), validityMs: options.serverCertValidityMs ?? 90 * dayMs, random: options.random, keyAlgorithm: 'ECDSA-P256',
  });
  await ensurePrivateDirectory(paths.tlsDir);
  await writeFileAtomic(paths.browserKeyPath, issued.keyPem, { mode: privateFileMode });
  await writeFileAtomic(paths.browserCertPath, issued.certPem, { mode: 0o644 });
  return { ...issued, ...shared };
}

/**
 * Where initDeployment keeps the root key passphrase it generated: in D itself, beside D/pki but
 * not in it, so that copying the CA folder (as compose's pki-init does) never carries the
 * passphrase with the key. Demo and test data directories only.
 */
export function generatedRootKeyPassphrasePath(dataDir: string): string {
  return join(dataDir, 'root-key-passphrase.generated');
}

/** 24 random bytes, base64url: 32 characters, over the 16 the key file demands. */
const generatedPassphraseBytes = 24;

/**
 * Creates the CA when the data directory has none, then loads. For the demo, simulations,
 * benchmarks and tests: a real deployment runs `sdc pki init` by hand and keeps the root key
 * offline. The root key is encrypted here too, with a random passphrase written to
 * generatedRootKeyPassphrasePath (mode 0600): nothing reads the root key again, but a data
 * directory left behind never holds a root key anyone can use by reading one file.
 */
export async function initDeployment(options: LoadDeploymentOptions): Promise<DeploymentMaterials> {
  if (!(await fileExists(pkiPaths(options.dataDir).intermediateCertPath))) {
    const passphrase = Buffer.from(options.random.bytes(generatedPassphraseBytes)).toString('base64url');
    await ensurePrivateDirectory(options.dataDir);
    await writeFileAtomic(generatedRootKeyPassphrasePath(options.dataDir), `${passphrase}\n`, { mode: privateFileMode });
    // The serving CA is constrained to the names this deployment serves under (decision 0006).
    const servingNames = [...(options.serverHostnames ?? []), ...(options.serverIpAddresses ?? [])];
    await initPki({ dataDir: options.dataDir, now: new Date(options.clock.nowMs()), random: options.random, rootKey: { passphrase, generatedEntropyBits: generatedPassphraseBytes * 8 }, servingNames });
  }
  return loadDeployment(options);
}

async function loadServiceKeyIfPresent(path: string, role: 'cp' | 'gateway'): Promise<ServiceSigner | undefined> {
  if (!(await fileExists(path))) return undefined;
  const seed = await readEd25519SeedFile(path);
  const publicKey = provider.publicKeyFromSeed(seed);
  return { kid: serviceKid(role, publicKey), seed, publicKey };
}

/**
 * The key at `path`, made when there is none. Created exclusively: of processes starting at once
 * on one data directory (replicas on a shared volume), one makes the key and the others read it,
 * so every one signs with the key devices pin (an existence check and then a write let each keep
 * its own key in memory while only the last written survived on disk).
 */
export async function loadOrCreateServiceKey(path: string, role: 'cp' | 'gateway', random: RandomSource): Promise<ServiceSigner> {
  let seed: Uint8Array;
  if (await fileExists(path)) {
    seed = await readEd25519SeedFile(path);
  } else {
    const made = random.bytes(32);
    seed = (await createFileExclusive(path, pemFromPrivateSeed(made), { mode: privateFileMode })) ? made : await readEd25519SeedFile(path);
  }
  const publicKey = provider.publicKeyFromSeed(seed);
  return { kid: serviceKid(role, publicKey), seed, publicKey };
}

async function loadOrIssueServerCertificate(options: LoadDeploymentOptions, pki: IssuingPki, intermediateCaPem: string): Promise<{ certPem: string; keyPem: string }> {
  const paths = deploymentPaths(options.dataDir, options.serverTlsName);
  const hostnames = [...(options.serverHostnames ?? ['localhost'])];
  const ipAddresses = [...(options.serverIpAddresses ?? ['127.0.0.1', '::1'])];
  const nowMs = options.clock.nowMs();
  if ((await fileExists(paths.serverCertPath)) && (await fileExists(paths.serverKeyPath))) {
    const certPem = await readFile(paths.serverCertPath, 'utf8');
    await requirePrivateKeyFileMode(paths.serverKeyPath);
    const keyPem = await readFile(paths.serverKeyPath, 'utf8');
    // Checked here: TLS would refuse it only when the server starts listening, without naming the file.
    requireParsablePrivateKeyPem(paths.serverKeyPath, keyPem);
    if (serverCertificateStillFits(paths.serverCertPath, certPem, { nowMs, hostnames, ipAddresses })) return { certPem, keyPem };
  }
  const issued = await issueServerCertificate({
    intermediateCertPem: intermediateCaPem, intermediateKey: pki.intermediate.privateKey, hostnames, ipAddresses,
    now: new Date(nowMs), validityMs: options.serverCertValidityMs ?? 90 * dayMs, random: options.random,
  });
  await ensurePrivateDirectory(paths.tlsDir);
  await writeFileAtomic(paths.serverKeyPath, issued.keyPem, { mode: privateFileMode });
  await writeFileAtomic(paths.serverCertPath, issued.certPem, { mode: 0o644 });
  return issued;
}

function serverCertificateStillFits(path: string, certPem: string, want: { nowMs: number; hostnames: string[]; ipAddresses: string[] }): boolean {
  try {
    const cert = parseCertificate(certPem);
    const notBefore = cert.notBefore.getTime();
    const notAfter = cert.notAfter.getTime();
    if (want.nowMs < notBefore || want.nowMs > notAfter - (notAfter - notBefore) / 3) return false;
    const san = cert.getExtension('2.5.29.17');
    const text = san ? JSON.stringify((san as unknown as { names: { toJSON(): unknown } }).names.toJSON()) : '';
    return [...want.hostnames, ...want.ipAddresses].every((name) => text.includes(`"${name}"`));
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', `${path} cannot be parsed as a certificate`, { path }, { cause: error });
  }
}
