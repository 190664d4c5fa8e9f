// Shared by the trust tests (not used by production code): a fresh PKI, OpenSSL helpers and
// a way to sign certificates that break the device profile on purpose.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdcError } from '../core/errors/index.js';
import { systemRandom } from '../runtime/system.js';
import { createIntermediateCa, createRootCa, type CaMaterial } from './ca.js';
import { DeviceCertificateIssuer } from './device-issuer.js';
import { generateEd25519KeyPair } from './ed25519-keys.js';
import { MemoryRevocationStore } from './revocation.js';
import { randomSerialHex, serialHexForEncoding } from './serial-number.js';
import { ed25519Algorithm, x509 } from './x509-provider.js';

/** The code of the SdcError `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SdcError, String(error));
    return error.code;
  }
  assert.fail('expected a refusal');
}

export const fixedNow = new Date('2030-01-01T00:00:00Z');
export const dayMs = 24 * 60 * 60 * 1000;

export interface TestPki {
  root: CaMaterial;
  intermediate: CaMaterial;
  revocations: MemoryRevocationStore;
  issuer: DeviceCertificateIssuer;
  anchors: x509.X509Certificate[];
}

export async function makeTestPki(now: Date = fixedNow): Promise<TestPki> {
  const root = await createRootCa({ now, random: systemRandom });
  const intermediate = await createIntermediateCa({ root, now, random: systemRandom });
  const revocations = new MemoryRevocationStore();
  const issuer = new DeviceCertificateIssuer({
    intermediate, rootCertificate: root.certificate, random: systemRandom, isRevoked: (s) => revocations.isRevoked(s),
  });
  return { root, intermediate, revocations, issuer, anchors: [intermediate.certificate, root.certificate] };
}

/** A CSR made with our own library (faster than spawning OpenSSL), for a fresh Ed25519 key. */
export async function makeCsrPem(commonName: string): Promise<string> {
  const keys = await generateEd25519KeyPair(systemRandom);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ '2.5.4.3': [commonName] }], keys, signingAlgorithm: ed25519Algorithm,
  });
  return csr.toString('pem');
}

export interface OpensslResult { status: number | null; stdout: string; stderr: string }

export function openssl(args: string[], cwd?: string): OpensslResult {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export async function withTempDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-trust-'));
  try {
    return await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function writeText(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

export interface CustomDeviceCertOptions {
  issuer: CaMaterial;
  commonName: string;
  sanUri?: string;
  notBefore: Date;
  notAfter: Date;
  extendedKeyUsages?: string[];
  keyUsages?: x509.KeyUsageFlags;
  extraExtensions?: x509.Extension[];
  /** The subject's key pair, when the test needs its private key (default a fresh one). */
  keys?: CryptoKeyPair;
}

/** Signs a device-like certificate with any CA and any profile, to test what the verifier refuses. */
export async function signCustomDeviceCertificate(options: CustomDeviceCertOptions): Promise<string> {
  const keys = options.keys ?? await generateEd25519KeyPair(systemRandom);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHexForEncoding(randomSerialHex(systemRandom)),
    subject: [{ '2.5.4.3': [options.commonName] }],
    issuer: options.issuer.certificate.subjectName,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    publicKey: keys.publicKey,
    signingKey: options.issuer.privateKey,
    signingAlgorithm: ed25519Algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(options.keyUsages ?? x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(options.extendedKeyUsages ?? [x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: options.sanUri ?? `urn:sdc:device:${options.commonName}` }]),
      ...(options.extraExtensions ?? []),
    ],
  });
  return certificate.toString('pem');
}
