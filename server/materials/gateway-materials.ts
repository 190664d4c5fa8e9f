import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import type { Clock, RandomSource } from '../../core/ports/ports.js';
import { createNodeEd25519Provider, pemFromPublicKey, publicKeyFromPem } from '../../runtime/ed25519-node.js';
import { ensurePrivateDirectory, fileExists, privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { readEd25519SeedFile, requireParsablePrivateKeyPem, requirePrivateKeyFileMode } from '../../trust/key-files.js';
import { loadIssuingPki, pkiPaths } from '../../trust/pki-directory.js';
import { issueServerCertificate } from '../../trust/server-certificate.js';
import { deploymentPaths, loadOrCreateServiceKey, serviceKid, type ServiceSigner } from './materials.js';

/**
 * What a gateway-only process (`sdc gateway`) loads, and nothing more (decision 0018): its TLS
 * certificate and key, the CA certificates, the gateway frame-signing key (its seed also derives
 * the TLS session ticket keys, shared by every gateway) and the control plane's command PUBLIC
 * keys it checks commands with. Never the root, intermediate or serving CA keys, the JWT key
 * ring, the command-signing private key or the artifact key: a gateway never issues, never signs
 * commands or tokens, never opens artifacts.
 */
export interface GatewayMaterials {
  readonly dataDir: string;
  readonly rootCaPem: string;
  readonly intermediateCaPem: string;
  readonly serverTls: { readonly certPem: string; readonly keyPem: string; readonly caPem: string };
  readonly gatewaySigner: ServiceSigner;
  /** kid -> Ed25519 public key: the control plane's current command key (D/keys/command-signing.pub). */
  readonly commandKeys: ReadonlyMap<string, Uint8Array>;
  /** The certificate file the gateway serves (D/tls/gateway-ID.pem, else the shared D/tls/gateway.pem). */
  readonly certificatePath: string;
  /** True when less than a third of the certificate's validity is left: issue a new one (`sdc pki gateway-cert`) and restart. */
  readonly renewDue: boolean;
}

/** The files a gateway reads from D; everything a gateway's volume must hold (deploy/k8s/40-gateway.yaml). */
export function gatewayMaterialsPaths(dataDir: string, gatewayId?: string) {
  const pki = pkiPaths(dataDir);
  const shared = deploymentPaths(dataDir, 'gateway');
  return {
    rootCertPath: pki.rootCertPath,
    intermediateCertPath: pki.intermediateCertPath,
    crlPath: pki.crlPath,
    gatewayKeyPath: shared.gatewayKeyPath,
    commandPublicKeyPath: join(dataDir, 'keys', 'command-signing.pub'),
    /** The certificate one gateway id uses before the shared one, when there is one. */
    ownCertPath: gatewayId === undefined ? undefined : deploymentPaths(dataDir, `gateway-${gatewayId}`).serverCertPath,
    ownKeyPath: gatewayId === undefined ? undefined : deploymentPaths(dataDir, `gateway-${gatewayId}`).serverKeyPath,
    sharedCertPath: shared.serverCertPath,
    sharedKeyPath: shared.serverKeyPath,
  } as const;
}

const provider = createNodeEd25519Provider();

async function requireFile(path: string, hint: string): Promise<void> {
  if (!(await fileExists(path))) throw new SdcError('TRUST_PKI_MISSING', `${path} does not exist (${hint})`, { path });
}

export interface LoadGatewayMaterialsOptions {
  dataDir: string;
  clock: Clock;
  /** Picks D/tls/gateway-ID.pem over the shared D/tls/gateway.pem. */
  gatewayId?: string;
  /** Names the certificate must cover (`--server-name`); checked, never issued for. */
  serverHostnames?: readonly string[];
  serverIpAddresses?: readonly string[];
}

/**
 * Loads a gateway's materials without reading any file it does not need (a folder holding only
 * them is enough). Nothing is created or issued: the certificate comes from `sdc pki gateway-cert`
 * (run where the intermediate key is), so a missing, expired or too narrow one is refused here.
 */
export async function loadGatewayMaterials(options: LoadGatewayMaterialsOptions): Promise<GatewayMaterials> {
  const paths = gatewayMaterialsPaths(options.dataDir, options.gatewayId);
  const issueHint = 'run sdc pki gateway-cert where the intermediate CA key is, docs/deployment.md';
  await requireFile(paths.rootCertPath, 'copy it from the CA folder');
  await requireFile(paths.intermediateCertPath, 'copy it from the CA folder');
  await requireFile(paths.gatewayKeyPath, issueHint);
  await requireFile(paths.commandPublicKeyPath, issueHint);
  const own = paths.ownCertPath !== undefined && paths.ownKeyPath !== undefined && (await fileExists(paths.ownCertPath));
  const certificatePath = own ? paths.ownCertPath! : paths.sharedCertPath;
  const keyPath = own ? paths.ownKeyPath! : paths.sharedKeyPath;
  await requireFile(certificatePath, issueHint);
  await requireFile(keyPath, issueHint);
  const rootCaPem = await readFile(paths.rootCertPath, 'utf8');
  const intermediateCaPem = await readFile(paths.intermediateCertPath, 'utf8');
  const certPem = await readFile(certificatePath, 'utf8');
  await requirePrivateKeyFileMode(keyPath);
  const keyPem = await readFile(keyPath, 'utf8');
  requireParsablePrivateKeyPem(keyPath, keyPem);
  const renewDue = checkGatewayCertificate(certificatePath, certPem, intermediateCaPem, options);
  const seed = await readEd25519SeedFile(paths.gatewayKeyPath);
  const publicKey = provider.publicKeyFromSeed(seed);
  let commandPublicKey: Uint8Array;
  try {
    commandPublicKey = publicKeyFromPem(await readFile(paths.commandPublicKeyPath, 'utf8'));
  } catch (error) {
    if (!SdcError.is(error)) throw error;
    throw new SdcError(error.code, `${paths.commandPublicKeyPath}: ${error.message}`, { path: paths.commandPublicKeyPath }, { cause: error });
  }
  return {
    dataDir: options.dataDir, rootCaPem, intermediateCaPem,
    serverTls: { certPem, keyPem, caPem: `${intermediateCaPem.trim()}\n${rootCaPem.trim()}\n` },
    gatewaySigner: { kid: serviceKid('gateway', publicKey), seed, publicKey },
    commandKeys: new Map([[serviceKid('cp', commandPublicKey), commandPublicKey]]),
    certificatePath, renewDue,
  };
}

/** Refuses a certificate that is not current, not issued by the intermediate or misses a name; true when renewal is due. */
function checkGatewayCertificate(path: string, certPem: string, intermediateCaPem: string, options: LoadGatewayMaterialsOptions): boolean {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (error) {
    throw new SdcError('TRUST_CERT_INVALID', `${path} cannot be parsed as a certificate`, { path }, { cause: error });
  }
  if (!cert.verify(new X509Certificate(intermediateCaPem).publicKey)) {
    throw new SdcError('TRUST_CERT_INVALID', `${path} is not issued by this deployment's intermediate CA (sdc pki gateway-cert)`, { path });
  }
  const nowMs = options.clock.nowMs();
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (nowMs < notBefore || nowMs > notAfter) {
    throw new SdcError('TRUST_CERT_INVALID', `${path} is not valid now (${cert.validFrom} to ${cert.validTo}); issue a new one with sdc pki gateway-cert`, { path });
  }
  const missing = [
    ...(options.serverHostnames ?? []).filter((name) => cert.checkHost(name, { wildcards: false }) === undefined),
    ...(options.serverIpAddresses ?? []).filter((ip) => cert.checkIP(ip) === undefined),
  ];
  if (missing.length > 0) {
    throw new SdcError('TRUST_CERT_INVALID', `${path} does not cover ${missing.join(', ')}; issue one that does with sdc pki gateway-cert --server-name`, { path, missing: missing.join(',') });
  }
  return nowMs > notAfter - (notAfter - notBefore) / 3;
}

export interface IssueGatewayCertificateOptions {
  dataDir: string;
  clock: Clock;
  random: RandomSource;
  /** Writes D/tls/gateway-ID.pem; without one, the shared D/tls/gateway.pem every gateway falls back to. */
  gatewayId?: string;
  serverHostnames?: readonly string[];
  serverIpAddresses?: readonly string[];
  validityMs?: number;
}

/**
 * Prepares what gateways load, where the intermediate CA key is (`sdc pki gateway-cert`): issues
 * the gateway TLS certificate, makes the gateway signing key if there is none, and publishes the
 * command key's public half (publishCommandPublicKey). Returns the files written.
 */
export async function issueGatewayCertificate(options: IssueGatewayCertificateOptions): Promise<{ certPath: string; keyPath: string; notAfter: string; commandKid: string }> {
  const pki = await loadIssuingPki({ dataDir: options.dataDir, random: options.random });
  const paths = deploymentPaths(options.dataDir, options.gatewayId === undefined ? 'gateway' : `gateway-${options.gatewayId}`);
  const intermediateCaPem = await readFile(pkiPaths(options.dataDir).intermediateCertPath, 'utf8');
  const issued = await issueServerCertificate({
    intermediateCertPem: intermediateCaPem, intermediateKey: pki.intermediate.privateKey,
    hostnames: [...(options.serverHostnames ?? ['localhost'])], ipAddresses: [...(options.serverIpAddresses ?? ['127.0.0.1', '::1'])],
    now: new Date(options.clock.nowMs()), validityMs: options.validityMs ?? 90 * 24 * 3600 * 1000, random: options.random,
  });
  await ensurePrivateDirectory(paths.tlsDir);
  await writeFileAtomic(paths.serverKeyPath, issued.keyPem, { mode: privateFileMode });
  await writeFileAtomic(paths.serverCertPath, issued.certPem, { mode: 0o644 });
  await ensurePrivateDirectory(paths.keysDir);
  await loadOrCreateServiceKey(paths.gatewayKeyPath, 'gateway', options.random);
  const command = await loadOrCreateServiceKey(paths.commandKeyPath, 'cp', options.random);
  await publishCommandPublicKey(options.dataDir, command);
  return { certPath: paths.serverCertPath, keyPath: paths.serverKeyPath, notAfter: new X509Certificate(issued.certPem).validTo, commandKid: command.kid };
}

/**
 * Writes D/keys/command-signing.pub, the public half gateways verify commands with. The control
 * plane writes it at every start (`sdc serve`), so after `sdc pki rotate-command-key` and a
 * control-plane restart, gateways started after it check the new key.
 */
export async function publishCommandPublicKey(dataDir: string, commandSigner: Pick<ServiceSigner, 'publicKey'>): Promise<void> {
  const path = gatewayMaterialsPaths(dataDir).commandPublicKeyPath;
  const pem = pemFromPublicKey(commandSigner.publicKey);
  if ((await fileExists(path)) && (await readFile(path, 'utf8')) === pem) return;
  await ensurePrivateDirectory(join(dataDir, 'keys'));
  await writeFileAtomic(path, pem, { mode: 0o644 });
}
