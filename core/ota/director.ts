import { SdcError, type ErrorCode } from '../errors/index.js';
import { bytesFromBase64url } from '../crypto/bytes.js';
import { ed25519SignatureBytes } from '../crypto/ed25519-sizes.js';
import type { Ed25519Provider } from '../ports/ports.js';
import { canonicalBytes } from '../protocol/canonical-json.js';
import type { TargetFile } from '../tuf/metadata.js';
import { compareVersions, isVersion, parseReleaseTarget, type ReleaseTargetInfo } from './release-target.js';
import { rolloutLimits } from './rollout-decisions.js';

/**
 * The director's document (Uptane's director role): for one device, one execution, a short-lived
 * statement "install exactly this target". The image repository (TUF) says what a release is;
 * the director says which device installs which release now. A device installs only when both
 * agree, so a compromised director alone cannot install an unsigned image, and a compromised
 * image repository alone cannot push a release to a device no rollout chose.
 *
 * Our own format, so it is signed as our envelopes are: Ed25519 over the RFC 8785 canonical JSON
 * of `signed` (not TUF's OLPC form, which belongs to TUF metadata only).
 *
 * ```json
 * { "signed": { "type": "ota_director", "device_id": "lab-01", "rollout_id": "ro-7", "wave": 0,
 *     "execution_id": "ex-91", "issued_at_ms": 1764700000000, "expires_at_ms": 1764700900000,
 *     "targets": [ { "path": "releases/agent-2.4.0.bin", "length": 1048576,
 *       "hashes": { "sha256": "<hex>" }, "release_counter": 42, "platform": "windows-x64" } ] },
 *   "signature": { "key_id": "director-1", "sig": "<base64url>" } }
 * ```
 */
export interface DirectorTarget {
  readonly path: string;
  readonly length: number;
  /** Algorithm to lowercase hex digest; sha256 is always there. */
  readonly hashes: Readonly<Record<string, string>>;
  readonly releaseCounter: number;
  readonly platform: string;
}

export interface DirectorDocument {
  readonly deviceId: string;
  readonly rolloutId: string;
  readonly wave: number;
  readonly executionId: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly target: DirectorTarget;
}

export const directorLimits = {
  /** Short-lived: a leaked or stale document is useless within the quarter hour a step takes. */
  lifetimeMsMax: 60 * 60_000,
  /** The device's clock may run behind the director's by this much. */
  clockSkewMsMax: 5 * 60_000,
  pathLengthMax: 1024,
  hashesMax: 4,
} as const;

const documentType = 'ota_director';
const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const hexPattern = /^[0-9a-f]{32,128}$/;
const algorithmPattern = /^sha(224|256|384|512)$/;
const platformPattern = /^[a-z][a-z0-9_-]{0,63}$/;
const signedKeys = ['type', 'device_id', 'rollout_id', 'wave', 'execution_id', 'issued_at_ms', 'expires_at_ms', 'targets'];
const targetKeys = ['path', 'length', 'hashes', 'release_counter', 'platform'];

/** The `signed` part as it goes on the wire (and is signed). */
export function directorSignedJson(doc: DirectorDocument): Record<string, unknown> {
  const t = doc.target;
  return {
    type: documentType, device_id: doc.deviceId, rollout_id: doc.rolloutId, wave: doc.wave, execution_id: doc.executionId,
    issued_at_ms: doc.issuedAtMs, expires_at_ms: doc.expiresAtMs,
    targets: [{ path: t.path, length: t.length, hashes: { ...t.hashes }, release_counter: t.releaseCounter, platform: t.platform }],
  };
}

/** The bytes the director signs and the device verifies. */
export function directorSigningBytes(doc: DirectorDocument): Uint8Array {
  return canonicalBytes(directorSignedJson(doc));
}

export interface DirectorKey {
  readonly keyId: string;
  readonly publicKey: Uint8Array;
}

/**
 * Parses a received envelope (already JSON-parsed by the strict parser) and verifies its
 * signature under the director key the device trusts. Throws OTA_DIRECTOR_INVALID for the
 * shape and OTA_DIRECTOR_SIGNATURE for the key id or signature; times are checked in checkUpdate.
 */
export function verifyDirectorEnvelope(envelope: unknown, key: DirectorKey, ed25519: Ed25519Provider): DirectorDocument {
  const outer = record(envelope, 'envelope', ['signed', 'signature']);
  const doc = parseDirectorSigned(outer['signed']);
  const signature = record(outer['signature'], 'signature', ['key_id', 'sig']);
  if (signature['key_id'] !== key.keyId) throw new SdcError('OTA_DIRECTOR_SIGNATURE', `director document is signed by key ${String(signature['key_id'])}, not ${key.keyId}`);
  const sig = bytesFromBase64url(signature['sig'] as string, { code: 'OTA_DIRECTOR_SIGNATURE', name: 'signature.sig', length: ed25519SignatureBytes });
  // The signed bytes are re-derived from the parsed document, so nothing unparsed can ride along.
  if (!ed25519.verify(key.publicKey, directorSigningBytes(doc), sig)) throw new SdcError('OTA_DIRECTOR_SIGNATURE', 'director document signature does not verify');
  return doc;
}

/** Checks the `signed` part's shape; throws OTA_DIRECTOR_INVALID. */
export function parseDirectorSigned(value: unknown): DirectorDocument {
  const signed = record(value, 'signed', signedKeys);
  if (signed['type'] !== documentType) invalid(`type is not ${documentType}`);
  const targets = signed['targets'];
  // Exactly one: a document naming several targets would let the director choose among them later.
  if (!Array.isArray(targets) || targets.length !== 1) invalid('targets does not list exactly one target');
  const doc: DirectorDocument = {
    deviceId: id(signed, 'device_id'), rolloutId: id(signed, 'rollout_id'), wave: integer(signed, 'wave', 0, rolloutLimits.wavesMax - 1),
    executionId: id(signed, 'execution_id'), issuedAtMs: integer(signed, 'issued_at_ms', 0, Number.MAX_SAFE_INTEGER),
    expiresAtMs: integer(signed, 'expires_at_ms', 0, Number.MAX_SAFE_INTEGER), target: parseTarget(targets[0]),
  };
  const lifetimeMs = doc.expiresAtMs - doc.issuedAtMs;
  if (lifetimeMs <= 0 || lifetimeMs > directorLimits.lifetimeMsMax) invalid(`valid for ${lifetimeMs} ms, not within 1..${directorLimits.lifetimeMsMax}`);
  return doc;
}

function parseTarget(value: unknown): DirectorTarget {
  const target = record(value, 'target', targetKeys);
  const path = target['path'];
  if (typeof path !== 'string' || path.length === 0 || path.length > directorLimits.pathLengthMax) invalid('target path is missing or too long');
  const hashes = record(target['hashes'], 'target hashes', null);
  const algorithms = Object.keys(hashes);
  if (algorithms.length === 0 || algorithms.length > directorLimits.hashesMax || !Object.hasOwn(hashes, 'sha256')) invalid('target hashes must include sha256 and at most 4 algorithms');
  for (const algorithm of algorithms) {
    const digest = hashes[algorithm];
    if (!algorithmPattern.test(algorithm) || typeof digest !== 'string' || !hexPattern.test(digest)) invalid(`target hash ${algorithm} is malformed`);
  }
  const platform = target['platform'];
  if (typeof platform !== 'string' || !platformPattern.test(platform)) invalid('target platform is malformed');
  return {
    path: path as string, length: integer(target, 'length', 0, Number.MAX_SAFE_INTEGER), hashes: hashes as Record<string, string>,
    releaseCounter: integer(target, 'release_counter', 0, Number.MAX_SAFE_INTEGER), platform: platform as string,
  };
}

// ---------------------------------------------------------------------------------------------
// The agent's decision: does the director agree with the image repository, for this device?

export interface UpdateCheckInput {
  /** The director's document, verified (verifyDirectorEnvelope). */
  readonly director: DirectorDocument;
  /** The target as the TUF client found it in the image repository (core/tuf targetInfo). */
  readonly imageTarget: TargetFile;
  /** What the device's notice said it is for; every field must match the document. */
  readonly binding: { readonly deviceId: string; readonly rolloutId: string; readonly wave: number; readonly executionId: string };
  readonly device: {
    readonly platform: string;
    readonly agentVersion: string;
    /** The highest release counter the device ever installed (kept across updates and rollbacks). */
    readonly installedReleaseCounter: number;
  };
  readonly nowMs: number;
}

/** What the agent may install: the image repository's target, agreed by the director. */
export interface ApprovedUpdate {
  readonly executionId: string;
  readonly path: string;
  readonly length: number;
  readonly hashes: Readonly<Record<string, string>>;
  readonly release: ReleaseTargetInfo;
}

/**
 * Accepts the update only when the document is current and bound to this device and execution,
 * and the director and the image repository agree on the target's path, length, every hash the
 * director lists, the release counter and the platform; the counter never goes below what the
 * device installed, and the agent is new enough. Each refusal is its own typed error, for the
 * device's signed refusal report.
 */
export function checkUpdate(input: UpdateCheckInput): ApprovedUpdate {
  const { director, imageTarget, device } = input;
  checkCurrent(director, input.nowMs);
  checkBinding(director, input.binding);
  checkSameArtifact(director.target, imageTarget);
  const release = parseReleaseTarget(imageTarget.custom);
  if (release.releaseCounter !== director.target.releaseCounter) {
    refuse('OTA_TARGET_MISMATCH', `release counter: director ${director.target.releaseCounter}, image repository ${release.releaseCounter}`);
  }
  if (director.target.platform !== device.platform || !release.platforms.includes(device.platform)) {
    refuse('OTA_PLATFORM_MISMATCH', `device platform ${device.platform}; director names ${director.target.platform}, image repository ${release.platforms.join(', ')}`);
  }
  if (release.releaseCounter < device.installedReleaseCounter) {
    refuse('OTA_RELEASE_COUNTER_ROLLBACK', `release counter ${release.releaseCounter} is below the installed ${device.installedReleaseCounter}`);
  }
  if (!isVersion(device.agentVersion)) throw new SdcError('PROTO_INVALID_ARGUMENT', `agent version ${device.agentVersion} is not major.minor.patch`);
  if (compareVersions(device.agentVersion, release.minAgentVersion) < 0) {
    refuse('OTA_AGENT_TOO_OLD', `agent ${device.agentVersion} is older than the required ${release.minAgentVersion}`);
  }
  return { executionId: director.executionId, path: imageTarget.path, length: imageTarget.length, hashes: director.target.hashes, release };
}

function checkCurrent(director: DirectorDocument, nowMs: number): void {
  if (nowMs >= director.expiresAtMs) refuse('OTA_DIRECTOR_EXPIRED', `director document expired at ${director.expiresAtMs}, now ${nowMs}`);
  if (nowMs < director.issuedAtMs - directorLimits.clockSkewMsMax) refuse('OTA_DIRECTOR_EXPIRED', `director document is issued at ${director.issuedAtMs}, in the future of ${nowMs}`);
}

function checkBinding(director: DirectorDocument, binding: UpdateCheckInput['binding']): void {
  const pairs = [
    ['device', director.deviceId, binding.deviceId], ['rollout', director.rolloutId, binding.rolloutId],
    ['wave', director.wave, binding.wave], ['execution', director.executionId, binding.executionId],
  ] as const;
  for (const [name, theirs, ours] of pairs) {
    if (theirs !== ours) refuse('OTA_DIRECTOR_WRONG_BINDING', `director document is for ${name} ${String(theirs)}, not ${String(ours)}`);
  }
}

function checkSameArtifact(target: DirectorTarget, image: TargetFile): void {
  if (target.path !== image.path) refuse('OTA_TARGET_MISMATCH', `path: director ${target.path}, image repository ${image.path}`);
  if (target.length !== image.length) refuse('OTA_TARGET_MISMATCH', `length: director ${target.length}, image repository ${image.length}`);
  const imageHashes = new Map(image.hashes.map(([algorithm, digest]) => [algorithm, digest.toLowerCase()]));
  if (!imageHashes.has('sha256')) refuse('OTA_TARGET_MISMATCH', 'the image repository lists no sha256 for the target');
  // Every hash the director lists must be listed, equal, by the image repository: one the
  // repository does not list could not be checked against signed metadata.
  for (const [algorithm, digest] of Object.entries(target.hashes)) {
    if (imageHashes.get(algorithm) !== digest) refuse('OTA_TARGET_MISMATCH', `${algorithm}: the director and the image repository disagree`);
  }
}

// ---------------------------------------------------------------------------------------------
// Shape helpers

/** An object with exactly `keys` (or any keys when null): unknown members are refused, it is our own format. */
function record(value: unknown, name: string, keys: readonly string[] | null): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) invalid(`${name} is not an object`);
  const object = value as Record<string, unknown>;
  if (keys !== null) {
    for (const key of Object.keys(object)) if (!keys.includes(key)) invalid(`${name} has an unknown member ${key}`);
    for (const key of keys) if (!Object.hasOwn(object, key)) invalid(`${name} lacks ${key}`);
  }
  return object;
}

function id(object: Record<string, unknown>, key: string): string {
  const value = object[key];
  if (typeof value !== 'string' || !idPattern.test(value)) invalid(`${key} is missing or malformed`);
  return value as string;
}

function integer(object: Record<string, unknown>, key: string, min: number, max: number): number {
  const value = object[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) invalid(`${key} is not an integer in ${min}..${max}`);
  return value as number;
}

function invalid(message: string): never {
  throw new SdcError('OTA_DIRECTOR_INVALID', `director document: ${message}`);
}

function refuse(code: ErrorCode, message: string): never {
  throw new SdcError(code, message);
}
