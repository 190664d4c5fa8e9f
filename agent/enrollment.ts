import { SdcError } from '../core/errors/index.js';
import { httpsJson } from '../runtime/https-json.js';
import { createNodeEd25519Provider, pemFromPrivateSeed } from '../runtime/ed25519-node.js';
import type { Clock, RandomSource } from '../core/ports/ports.js';
import { importEd25519PrivateKey, publicKeyOf } from '../trust/ed25519-keys.js';
import { oidCommonName, requireDeviceId } from '../trust/device-profile.js';
import { ed25519Algorithm, parseCertificate, x509 } from '../trust/x509-provider.js';
import { createPrivateKey } from 'node:crypto';
import {
  agentPaths, loadOrCreateDeviceKey, parseTrustConfig, readDeviceKey, readTextFile, readTrustConfig, writeAgentFile, writeTrustConfig,
  type AgentPaths, type PinnedKey, type TrustConfig,
} from './state/agent-state.js';
import { fileExists } from '../runtime/atomic-file.js';
import { bytesFromBase64url } from '../core/crypto/bytes.js';
import { COMMAND_KEYS_MAX } from '../kernel/generated/contract.js';
import type { KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import type { CommandKeySet, ProvisionOutcomeName } from '../kernel/command/provision.js';

/** What a running agent needs from its directory. */
export interface AgentIdentity {
  readonly paths: AgentPaths;
  readonly deviceId: string;
  /** The device's Ed25519 private seed (device.key). */
  readonly seed: Uint8Array;
  readonly keyPem: string;
  /** device.pem: the device certificate; chain.pem: intermediate then root. */
  readonly certPem: string;
  readonly chainPem: string;
  readonly trust: TrustConfig;
}

/** The control plane's answer to POST /v1/enroll (and, by contract, to renewal). */
export interface EnrollmentAnswer {
  certificate_pem: string;
  chain_pems: string[];
  command_keys: PinnedKey[];
  gateway_keys: PinnedKey[];
  gateway_urls: string[];
  /** The kernel rotation to command_keys, signed by each command key the control plane holds (absent from older control planes). */
  kernel_key_rotations?: Array<{ kid: string; signature: string }>;
}

export interface EnsureEnrolledOptions {
  dir: string;
  /** Control plane base URL (https). Required for a first enrollment; later runs use trust.json. */
  serverUrl?: string;
  deviceId?: string;
  pairingToken?: string;
  /** PEM of the deployment's root CA, trusted for HTTPS and WSS. */
  caPem?: string;
  random: RandomSource;
  clock: Clock;
  requestTimeoutMs?: number;
}

const answerBytesMax = 256 * 1024;

/**
 * First run (no trust.json): needs a device id, a pairing token, the server URL and the CA; makes
 * the key, sends the CSR, stores the chain and the pinned keys. Later runs load what is there;
 * a token given again is ignored (the device is enrolled already), a different device id is refused.
 */
export async function ensureEnrolled(options: EnsureEnrolledOptions): Promise<{ identity: AgentIdentity; enrolledNow: boolean }> {
  const paths = agentPaths(options.dir);
  if (await fileExists(paths.trust)) {
    const identity = await loadIdentity(paths);
    if (options.deviceId !== undefined && options.deviceId !== identity.deviceId) {
      throw new SdcError('AGENT_STATE_INVALID', `${options.dir} is enrolled as ${identity.deviceId}, not ${options.deviceId}`);
    }
    return { identity, enrolledNow: false };
  }
  if (options.deviceId === undefined || options.pairingToken === undefined) {
    throw new SdcError('AGENT_NOT_ENROLLED', `${options.dir} holds no enrollment: pass --device ID and the pairing token (--pairing-token-file F, --pairing-token-stdin or $SDC_PAIRING_TOKEN)`);
  }
  if (options.serverUrl === undefined || options.caPem === undefined) {
    throw new SdcError('AGENT_NOT_ENROLLED', 'a first enrollment needs --server URL and --ca FILE (the deployment root CA)');
  }
  const deviceId = requireDeviceId(options.deviceId);
  const { seed } = await loadOrCreateDeviceKey(paths, options.random);
  const csrPem = await createCsrPem(seed, deviceId);
  const answer = await postJson<EnrollmentAnswer>({
    url: new URL('/v1/enroll', options.serverUrl), body: { device_id: deviceId, token: options.pairingToken, csr_pem: csrPem },
    caPem: options.caPem, timeoutMs: options.requestTimeoutMs ?? 30_000,
  });
  await storeAnswer(paths, answer, { deviceId, controlPlaneUrl: options.serverUrl, caPem: options.caPem, seed });
  return { identity: await loadIdentity(paths), enrolledNow: true };
}

export async function loadIdentity(paths: AgentPaths): Promise<AgentIdentity> {
  const trust = await readTrustConfig(paths);
  const seed = await readDeviceKey(paths);
  const certPem = await readTextFile(paths.deviceCert);
  const chainPem = await readTextFile(paths.chain);
  return { paths, deviceId: trust.device_id, seed, keyPem: pemFromPrivateSeed(seed), certPem, chainPem, trust };
}

/** True when less than a third of the certificate's validity is left (renew early, well before expiry). */
export function renewalDue(certPem: string, nowMs: number): boolean {
  const cert = parseCertificate(certPem);
  const notBefore = cert.notBefore.getTime();
  const notAfter = cert.notAfter.getTime();
  return notAfter - nowMs < (notAfter - notBefore) / 3;
}

/**
 * Renews the device certificate with the same key: `POST {control plane}/v1/devices/{id}/renew`
 * with body `{ csr_pem }`, authenticated by the current certificate as the TLS client
 * certificate; the answer has the enrollment shape. (Contract only: see docs/agent.md.)
 */
export async function renewCertificate(identity: AgentIdentity, options: { timeoutMs?: number } = {}): Promise<AgentIdentity> {
  const csrPem = await createCsrPem(identity.seed, identity.deviceId);
  const answer = await postJson<EnrollmentAnswer>({
    url: new URL(`/v1/devices/${encodeURIComponent(identity.deviceId)}/renew`, identity.trust.control_plane_url),
    body: { csr_pem: csrPem }, caPem: identity.trust.ca_pem, timeoutMs: options.timeoutMs ?? 30_000,
    clientCert: { certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem },
  });
  await storeAnswer(identity.paths, answer, {
    deviceId: identity.deviceId, controlPlaneUrl: identity.trust.control_plane_url, caPem: identity.trust.ca_pem, seed: identity.seed,
  });
  return loadIdentity(identity.paths);
}

/** A PKCS#10 request for the device key with CN = device id. */
export async function createCsrPem(seed: Uint8Array, deviceId: string): Promise<string> {
  const der = new Uint8Array(createPrivateKey({ key: pemFromPrivateSeed(seed), format: 'pem' }).export({ format: 'der', type: 'pkcs8' }));
  const privateKey = await importEd25519PrivateKey(der);
  der.fill(0);
  const keys = { privateKey, publicKey: await publicKeyOf(privateKey) };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ [oidCommonName]: [deviceId] }], keys, signingAlgorithm: ed25519Algorithm });
  return csr.toString('pem');
}

/** Checks the answer before anything is written: the certificate must be for this key and device. */
async function storeAnswer(paths: AgentPaths, answer: EnrollmentAnswer, context: { deviceId: string; controlPlaneUrl: string; caPem: string; seed: Uint8Array }): Promise<void> {
  if (typeof answer?.certificate_pem !== 'string' || !Array.isArray(answer.chain_pems) || !answer.chain_pems.every((p) => typeof p === 'string')) {
    throw new SdcError('AGENT_ENROLL_FAILED', 'enrollment answer lacks certificate_pem or chain_pems');
  }
  let cert;
  try {
    cert = parseCertificate(answer.certificate_pem);
  } catch (error) {
    throw new SdcError('AGENT_ENROLL_FAILED', 'enrollment answer certificate cannot be parsed', {}, { cause: error });
  }
  if (cert.subjectName.getField(oidCommonName)[0] !== context.deviceId) throw new SdcError('AGENT_ENROLL_FAILED', 'issued certificate names another device');
  const issuedKey = new Uint8Array(await crypto.subtle.exportKey('raw', await cert.publicKey.export()));
  const ourKey = createNodeEd25519Provider().publicKeyFromSeed(context.seed);
  if (Buffer.compare(Buffer.from(issuedKey), Buffer.from(ourKey)) !== 0) throw new SdcError('AGENT_ENROLL_FAILED', 'issued certificate is for another key');
  const trust = parseTrustConfig({
    version: 1, device_id: context.deviceId, control_plane_url: context.controlPlaneUrl, gateway_urls: answer.gateway_urls,
    ca_pem: context.caPem, command_keys: answer.command_keys, gateway_keys: answer.gateway_keys,
    ...(answer.kernel_key_rotations === undefined ? {} : { kernel_key_rotations: answer.kernel_key_rotations }),
  }, 'enrollment answer');
  await writeAgentFile(paths, paths.deviceCert, answer.certificate_pem.trimEnd() + '\n');
  await writeAgentFile(paths, paths.chain, answer.chain_pems.map((p) => p.trimEnd() + '\n').join(''));
  // trust.json last: its presence is what marks the directory as enrolled.
  await writeTrustConfig(paths, trust);
}

interface PostJsonOptions {
  url: URL;
  body: unknown;
  caPem: string;
  timeoutMs: number;
  clientCert?: { certPem: string; keyPem: string };
}

/** One HTTPS POST trusting only `caPem`; any failure becomes AGENT_ENROLL_FAILED carrying the server's code. */
async function postJson<T>(options: PostJsonOptions): Promise<T> {
  try {
    const answer = await httpsJson<T>({
      method: 'POST', url: options.url, caPem: options.caPem, body: options.body, timeoutMs: options.timeoutMs,
      answerBytesMax, ...(options.clientCert ? { clientCert: options.clientCert } : {}),
    });
    return answer.body;
  } catch (error) {
    const typed = SdcError.is(error) ? error : undefined;
    throw new SdcError('AGENT_ENROLL_FAILED', typed?.message ?? String(error), typed?.details ?? {}, { cause: error });
  }
}

/**
 * The device id and control-plane command keys pinned at enrollment, as the kernel takes them.
 * The kernel holds at most COMMAND_KEYS_MAX keys; trust.json lists them in the order the control
 * plane answered (current key first), so the first ones are kept.
 */
export function kernelCommandKeys(identity: Pick<AgentIdentity, 'deviceId' | 'trust'>): CommandKeySet {
  const keys = identity.trust.command_keys.slice(0, COMMAND_KEYS_MAX)
    .map((k) => bytesFromBase64url(k.public_key, { code: 'CRYPTO_BAD_KEY', name: k.kid, length: 32 }));
  return { deviceId: identity.deviceId, keys };
}

/**
 * Provisions the command keys into the kernel, so the kernel verifies the control plane's
 * signature on every privileged command itself. Runs after every enrollment load: the first time
 * it sets the keys (the trusted moment, before the agent has handled any input), later it is a
 * no-op ('unchanged'). Keys that changed since (the control plane rotated its command key and the
 * device renewed) need a rotation signature by a key the kernel holds: the kernel answers
 * PROVISION_DENIED to the plain request, and the rotations the control plane signed
 * (`trust.kernel_key_rotations`, one per command key it held) are offered in turn until the
 * kernel takes one ('rotated'). When none is by a key the kernel holds (a device that missed two
 * rotations), the last refusal is thrown so the caller can say so (privileged commands then fail
 * COMMAND_FORGED, visibly).
 */
export async function provisionKernelCommandKeys(kernel: KernelBridge, identity: Pick<AgentIdentity, 'deviceId' | 'trust'>): Promise<ProvisionOutcomeName | 'unsupported'> {
  if (!kernel.provisionCommandKeys) return 'unsupported';
  const set = kernelCommandKeys(identity);
  try {
    return (await kernel.provisionCommandKeys(set)).outcome;
  } catch (error) {
    const rotations = identity.trust.kernel_key_rotations ?? [];
    if (!SdcError.is(error, 'KERNEL_REFUSED') || error.details?.status !== 'PROVISION_DENIED' || rotations.length === 0) throw error;
    let last: unknown = error;
    for (const rotation of rotations) {
      const signature = bytesFromBase64url(rotation.signature, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'kernel_key_rotations.signature', length: 64 });
      try {
        return (await kernel.provisionCommandKeys(set, signature)).outcome;
      } catch (refused) {
        if (!SdcError.is(refused, 'KERNEL_REFUSED') || refused.details?.status !== 'PROVISION_DENIED') throw refused;
        last = refused;
      }
    }
    throw last;
  }
}
