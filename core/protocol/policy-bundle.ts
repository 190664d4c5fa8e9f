import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SdcError } from '../errors/index.js';
import { base64urlFromBytes, bytesFromBase64url } from '../crypto/bytes.js';
import type { Ed25519Provider, Sha256 } from '../ports/ports.js';
import { verifyCommandApprovals, type ApproverKey } from './approvals.js';
import { verifyRolloutCommandApprovals } from '../ota/rollout-approval.js';
import type { SignedCommand } from './messages/command.js';
import { canonicalBytes, canonicalize, canonicalMembers } from './canonical-json.js';
import type { SignedEnvelope } from './envelope.js';
import { defaultProtocolLimits } from './limits.js';
import {
  devicePolicyOf, evaluatePolicy, parsePolicy, policyRoles, type DeviceSelector, type Policy, type PolicyActor, type PolicyDecision, type PolicyRule,
} from './policy.js';
import {
  policyBundleFormat, SignedPolicyBundleSchema, type ApproverKeyEntry, type PolicyBundleDocument, type SignedPolicyBundle,
} from './policy-bundle-schema.js';

export type { ApproverKeyEntry, PolicyBundleDocument, SignedPolicyBundle } from './policy-bundle-schema.js';

/**
 * The policy bundle: the rules of one policy revision that can concern one device, signed by the
 * control plane, pushed over the session and enforced by the agent before it executes a command,
 * also while the control plane is unreachable (docs/policy.md, "The device's policy bundle").
 *
 * Key: the control plane's command-signing key, which every agent already pins at enrollment.
 * A distinct signing prefix keeps a bundle signature from ever verifying as a command (or the
 * reverse); a dedicated key would need new trust material at enrollment for no gain in what a
 * holder of the command key can do (it can already sign any command).
 *
 * Pure: time comes in as `nowMs`, the Ed25519 implementation as a provider.
 */
const bundleSigningPrefixText = 'sdc-policy-bundle-v1\n';
const utf8Encoder = new TextEncoder();

export const policyBundleLimits = Object.freeze({
  /**
   * Canonical size of a signed bundle. The envelope around it must fit the 64 KiB frame limit
   * (limits.ts); 60 KiB leaves room for the envelope's own members and signature.
   */
  signedBytesMax: 61_440,
  /** Validity of a bundle from its signing: a week, so a device offline for days still takes its last one. */
  validityMsDefault: 7 * 24 * 3600 * 1000,
  /** Longest validity accepted: a bundle is re-signed at least this often. */
  validityMsMax: 31 * 24 * 3600 * 1000,
});

/**
 * What a device keeps of the bundle it enforces: what the stale check, the report and the
 * command check read, and nothing of the frame it came in. The signed document itself is the
 * store's (a file, or its text in memory), from which a restart verifies it again. None of its
 * strings is a slice of the frame (a kept slice keeps the whole frame text alive), and devices
 * given the same policy share one frozen parse of it (heldPolicies): 100,000 simulated agents in
 * one process each kept their bundle's tree, its parse and the frame (issue 17).
 */
export interface HeldPolicyBundle {
  readonly deviceId: string;
  readonly version: number;
  readonly issuedAtMs: number;
  readonly deviceTags: readonly string[];
  /** The bundle's policy as the device enforces it (devicePolicyOf: no rate limits, posture or reasons). */
  readonly devicePolicy: Policy;
  /** The approvers' keys the bundle carries, by kid. */
  readonly approverKeys: ReadonlyMap<string, ApproverKey>;
}

/** A bundle that passed every check: the document as received (for the store) and what a device keeps of it. */
export interface VerifiedPolicyBundle {
  readonly signed: SignedPolicyBundle;
  /** Exactly canonicalize(signed), from the text the signature check wrote: what a store keeps. */
  readonly signedText: string;
  readonly bundle: PolicyBundleDocument;
  /** The bundle's policy, parsed (shared and frozen: see HeldPolicyBundle). */
  readonly policy: Policy;
  /** The approvers' keys the bundle carries, by kid. */
  readonly approverKeys: ReadonlyMap<string, ApproverKey>;
  readonly held: HeldPolicyBundle;
}

// ---------------------------------------------------------------------------------------------
// Cutting and signing (control plane)

/** Does this rule select the device? The same test as the engine's, so filtering never changes a decision. */
function selectsDevice(selector: DeviceSelector, device: { id: string; tags: readonly string[] }): boolean {
  if (selector === '*') return true;
  for (const pattern of selector.ids ?? []) {
    if (pattern.endsWith('*') ? device.id.startsWith(pattern.slice(0, -1)) : device.id === pattern) return true;
  }
  return (selector.tags ?? []).some((tag) => device.tags.includes(tag));
}

/** The unsigned bundle for one device: only the rules that select it (by id, prefix, tag or '*'). */
export function cutPolicyBundle(options: {
  policy: Policy; version: number; device: { id: string; tags?: readonly string[] }; issuedAtMs: number; validityMs?: number;
  /** Registered approver keys, for the approvals commands carry; omitted from the bundle when none. */
  approvers?: readonly ApproverKeyEntry[];
}): PolicyBundleDocument {
  const { policy, version, device, issuedAtMs } = options;
  const tags = [...new Set(device.tags ?? [])].sort();
  const selected: number[] = [];
  policy.rules.forEach((rule, index) => {
    if (selectsDevice(rule.devices, { id: device.id, tags })) selected.push(index);
  });
  const rules: PolicyRule[] = selected.map((index) => policy.rules[index]!);
  return {
    format: policyBundleFormat, device_id: device.id, version, issued_at: issuedAtMs,
    expires_at: issuedAtMs + (options.validityMs ?? policyBundleLimits.validityMsDefault), device_tags: tags,
    policy: cutPolicyOf(policy.rules, version, rules, selected),
    ...(options.approvers === undefined || options.approvers.length === 0
      ? {} : { approvers: [...options.approvers].sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0)) }),
  };
}

/**
 * The rules' canonical texts of a source policy, once per policy object (the policy store keeps
 * one per revision), for policies whose rules are deeply frozen (parsePolicy's are): a publish
 * then writes a device's bundle without walking its rules again, the policy being most of a
 * bundle (issue 17: one canonicalization of every rule per device at a fleet's start). null for
 * a policy whose rules could still change, or that has no canonical form (the bundle's own
 * canonicalization then refuses it as before).
 */
const ruleTextsBySource = new WeakMap<readonly PolicyRule[], readonly string[] | null>();
/** The canonical text of a cut bundle's policy, by that (frozen) object; only cutPolicyOf writes here. */
const cutPolicyTexts = new WeakMap<object, string>();
/** A rule sits three containers deep in a bundle (bundle, policy, rules): its own text has that much less depth to use. */
const ruleDepthInBundle = 3;

/** By the rules array itself (the policy object around it may be a mutable copy): a deeply frozen array cannot change. */
function ruleTextsOf(rules: readonly PolicyRule[]): readonly string[] | null {
  let texts = ruleTextsBySource.get(rules);
  if (texts === undefined) {
    texts = null;
    if (isDeeplyFrozen(rules)) {
      try {
        const limits = { depthMax: defaultProtocolLimits.depthMax - ruleDepthInBundle };
        texts = Object.freeze(rules.map((rule) => canonicalize(rule, { limits })));
      } catch {
        texts = null;
      }
    }
    ruleTextsBySource.set(rules, texts);
  }
  return texts;
}

/** The cut's policy document; frozen with its text remembered when the source's rules are (see ruleTextsOf). */
function cutPolicyOf(sourceRules: readonly PolicyRule[], version: number, rules: PolicyRule[], selected: readonly number[]): PolicyBundleDocument['policy'] {
  const cut = { version: 1, revision: version, rules };
  const texts = ruleTextsOf(sourceRules);
  if (texts === null || !Number.isSafeInteger(version)) return cut;
  // Members in RFC 8785 order (revision < rules < version); the same text canonicalize(cut) writes.
  const text = ['{"revision":', String(version), ',"rules":[', selected.map((index) => texts[index]!).join(','), '],"version":1}'].join('');
  Object.freeze(rules);
  cutPolicyTexts.set(Object.freeze(cut), text);
  return cut;
}

function isDeeplyFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  if (!Object.isFrozen(value)) return false;
  return Object.values(value).every(isDeeplyFrozen);
}

/** canonicalize(bundle), with the policy's text from the cut when it made one. */
function signedBundleText(bundle: PolicyBundleDocument): string {
  const policyText = typeof bundle.policy === 'object' && bundle.policy !== null ? cutPolicyTexts.get(bundle.policy) : undefined;
  const names = policyText === undefined ? undefined : plainMemberNames(bundle);
  if (policyText === undefined || names === undefined) return canonicalize(bundle);
  names.sort();
  const others = names.filter((name) => name !== 'policy');
  const texts = canonicalMembers(bundle, others);
  const members = names.map((name) => (name === 'policy' ? `${policyMemberPrefix}${policyText}` : texts[others.indexOf(name)]!));
  return `{${members.join(',')}}`;
}

export function policyBundleSigningInput(bundle: PolicyBundleDocument): Uint8Array {
  return signingInputOf(canonicalize(bundle));
}

/** The bytes signed for a bundle whose canonical text is `bundleText`: the ASCII prefix, then the text, in UTF-8. */
function signingInputOf(bundleText: string): Uint8Array {
  return utf8Encoder.encode(bundleSigningPrefixText + bundleText);
}

/** Signs a cut bundle; refuses one whose signed form would not fit a frame (POLICY_BUNDLE_TOO_LARGE). */
export function signPolicyBundle(options: { bundle: PolicyBundleDocument; kid: string; seed: Uint8Array; provider: Ed25519Provider }): SignedPolicyBundle {
  return signPolicyBundleText(options).signed;
}

/** A signed bundle with its canonical text (RFC 8785), which is what the control plane stores for the gateways. */
export interface SignedPolicyBundleText {
  readonly signed: SignedPolicyBundle;
  /** Exactly canonicalize(signed). */
  readonly text: string;
}

/**
 * signPolicyBundle, and the signed bundle's canonical text, with the bundle canonicalized once:
 * the signing input is the prefix and that text, and the signed form is that text and `sig` in
 * their member order ("bundle" < "sig"). Before, one publish canonicalized the bundle three times
 * (to sign, to check the size, to store), the bundle's policy being most of it (issue 17: 2 % of
 * a simulated fleet's start-up CPU).
 */
export function signPolicyBundleText(options: { bundle: PolicyBundleDocument; kid: string; seed: Uint8Array; provider: Ed25519Provider }): SignedPolicyBundleText {
  const { bundle, kid, seed, provider } = options;
  const bundleText = signedBundleText(bundle);
  const value = base64urlFromBytes(provider.sign(seed, signingInputOf(bundleText)));
  const signed: SignedPolicyBundle = { bundle, sig: { alg: 'Ed25519', kid, value } };
  const text = `{"bundle":${bundleText},"sig":${canonicalize(signed.sig)}}`;
  const bytes = utf8Encoder.encode(text).length;
  if (bytes > policyBundleLimits.signedBytesMax) {
    throw new SdcError('POLICY_BUNDLE_TOO_LARGE', `the bundle for ${bundle.device_id} is ${bytes} bytes, over ${policyBundleLimits.signedBytesMax}`, { deviceId: bundle.device_id, bytes });
  }
  return { signed, text };
}

// ---------------------------------------------------------------------------------------------
// Verification (agent)

const signedBundleCheck = TypeCompiler.Compile(SignedPolicyBundleSchema);

/** The version a device holds, to compare a new bundle against; absent before the first bundle. */
export interface HeldBundleVersion {
  readonly version: number;
  readonly issuedAtMs: number;
}

/**
 * The device-side checks, in order: shape (POLICY_BUNDLE_INVALID), signature by a pinned
 * control-plane key (POLICY_BUNDLE_SIGNATURE_INVALID), addressed to this device
 * (POLICY_BUNDLE_DEVICE_MISMATCH), its policy parses (POLICY_BUNDLE_INVALID with the rule's path),
 * not older than the held one (POLICY_BUNDLE_VERSION_STALE), not expired (POLICY_BUNDLE_EXPIRED;
 * skipped with `nowMs: undefined`, which the agent uses to reload the copy it already enforces).
 *
 * "Not older": a higher version, or the same version issued no earlier (the control plane
 * re-signs a revision when the device's tags change or the bundle nears its expiry).
 */
export function verifyPolicyBundle(options: {
  signed: unknown;
  deviceId: string;
  resolveKey: (kid: string) => Uint8Array | undefined;
  provider: Ed25519Provider;
  nowMs: number | undefined;
  held?: HeldBundleVersion;
  /**
   * canonicalize(signed.bundle) as cut from the frame it came in (receivedBundleText): the
   * signature is checked over it instead of the bundle written out again, but only when it was
   * issued for this very bundle object (see ReceivedBundleText); otherwise it is ignored.
   */
  receivedBundleText?: ReceivedBundleText;
}): VerifiedPolicyBundle {
  const signed = checkShape(options.signed);
  const { bundle, sig } = signed;
  const texts = checkSignature(signed, options);
  if (bundle.device_id !== options.deviceId) {
    throw new SdcError('POLICY_BUNDLE_DEVICE_MISMATCH', `policy bundle is for ${bundle.device_id}`, { deviceId: bundle.device_id });
  }
  const parsed = parseBundlePolicy(bundle, texts.policy);
  const held = options.held;
  if (held !== undefined && (bundle.version < held.version || (bundle.version === held.version && bundle.issued_at < held.issuedAtMs))) {
    throw new SdcError('POLICY_BUNDLE_VERSION_STALE', `policy bundle version ${bundle.version} is older than the held version ${held.version}`, { version: bundle.version, heldVersion: held.version });
  }
  checkValidity(bundle, options.nowMs);
  const approverKeys = approverKeysOf(bundle);
  return {
    signed: { bundle, sig }, signedText: signedTextOf(texts.bundle, sig), bundle, policy: parsed.policy, approverKeys,
    held: {
      // The caller's id (equal to the bundle's, checked above), not a slice of the frame.
      deviceId: options.deviceId, version: bundle.version, issuedAtMs: bundle.issued_at,
      deviceTags: bundle.device_tags.length === 0 ? noTags : detachedCopy(bundle.device_tags),
      devicePolicy: parsed.devicePolicy, approverKeys,
    },
  };
}

/**
 * canonicalize({ bundle, sig }) from the bundle's text, joined into a new flat string: a store
 * keeps it, and a concatenation (a rope) would keep its parts alive, among them strings the
 * parser sliced out of the frame (the signature's value), so the whole frame text with them.
 */
function signedTextOf(bundleText: string, sig: SignedPolicyBundle['sig']): string {
  return ['{"bundle":', bundleText, ',"sig":', canonicalize(sig), '}'].join('');
}

const noTags: readonly string[] = Object.freeze([]);
/** Shared by every bundle without approvers; typed read-only, never written. */
const noApproverKeys: ReadonlyMap<string, ApproverKey> = new Map();

/** A copy whose strings own their characters: JSON.parse writes new strings, never slices of its input. */
function detachedCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function approverKeysOf(bundle: PolicyBundleDocument): ReadonlyMap<string, ApproverKey> {
  const entries = bundle.approvers ?? [];
  if (entries.length === 0) return noApproverKeys;
  const keys = new Map<string, ApproverKey>();
  detachedCopy(entries).forEach((entry, index) => {
    if (keys.has(entry.kid)) throw new SdcError('POLICY_BUNDLE_INVALID', `approver key ${entry.kid} appears twice`, { path: `approvers[${index}].kid` });
    const publicKey = bytesFromBase64url(entry.public_key, { code: 'POLICY_BUNDLE_INVALID', name: `approvers[${index}].public_key`, length: 32 });
    keys.set(entry.kid, { approver: entry.approver, role: entry.role, publicKey });
  });
  return keys;
}

function checkShape(value: unknown): SignedPolicyBundle {
  if (!signedBundleCheck.Check(value)) {
    const first = signedBundleCheck.Errors(value).First();
    throw new SdcError('POLICY_BUNDLE_INVALID', `policy bundle ${first?.path || '/'}: ${first?.message ?? 'invalid'}`, { path: first?.path || '/' });
  }
  return value;
}

/** A checked bundle's canonical text and, within it, its policy's. */
interface CanonicalBundleTexts {
  readonly bundle: string;
  readonly policy: string;
}

/** Returns the canonical texts the signature was checked over, for the rest of the checks. */
function checkSignature(signed: SignedPolicyBundle, options: { resolveKey: (kid: string) => Uint8Array | undefined; provider: Ed25519Provider; receivedBundleText?: ReceivedBundleText }): CanonicalBundleTexts {
  const publicKey = options.resolveKey(signed.sig.kid);
  if (publicKey === undefined) {
    throw new SdcError('POLICY_BUNDLE_SIGNATURE_INVALID', `policy bundle is signed by unknown key ${signed.sig.kid}`, { kid: signed.sig.kid });
  }
  const signature = bytesFromBase64url(signed.sig.value, { code: 'POLICY_BUNDLE_SIGNATURE_INVALID', name: 'sig.value', length: 64 });
  // canonicalize refuses what JSON cannot carry (a lone surrogate in a description): malformed, not forged.
  let texts: CanonicalBundleTexts;
  try {
    const received = options.receivedBundleText === undefined ? undefined : issuedBundleTexts.get(options.receivedBundleText);
    // Only the text cut beside this very parsed bundle: a text signed for another (even the same device and version) would
    // pass the signature check while the bundle returned and saved carries a policy nobody signed (review h13).
    texts = (received === undefined || received.bundle !== signed.bundle ? undefined : receivedBundleTexts(signed.bundle, received.text)) ?? canonicalBundleTexts(signed.bundle);
  } catch (error) {
    throw new SdcError('POLICY_BUNDLE_INVALID', 'policy bundle has no canonical form', { path: '/bundle' }, { cause: error });
  }
  if (!options.provider.verify(publicKey, signingInputOf(texts.bundle), signature)) {
    throw new SdcError('POLICY_BUNDLE_SIGNATURE_INVALID', 'policy bundle signature does not verify', { kid: signed.sig.kid });
  }
  return texts;
}

/**
 * canonicalize(bundle), written member by member so that the policy's canonical text (most of
 * the bundle) comes out of the same pass: the device used to canonicalize the policy a second
 * time to look up its shared parse (issue 17). The shape check has made `bundle` an object with
 * the schema's members only; canonicalMembers leaves to its caller what canonicalize checks of
 * the object itself (plain, enumerable data members only), so anything else takes the plain path.
 */
function canonicalBundleTexts(bundle: PolicyBundleDocument): CanonicalBundleTexts {
  const names = plainMemberNames(bundle);
  if (names === undefined) {
    return { bundle: canonicalize(bundle), policy: canonicalize(bundle.policy) };
  }
  // Default sort compares UTF-16 code units: RFC 8785's member order, as canonicalize sorts.
  names.sort();
  const members = canonicalMembers(bundle, names);
  const policyAt = names.indexOf('policy');
  // join writes a new flat string: none of the members' parts (some of them slices of the frame) stays referenced.
  const text = `{${members.join(',')}}`;
  // The schema requires `policy`; without it the bundle's text is still checked, and its policy refused by parsePolicy.
  return { bundle: text, policy: policyAt === -1 ? canonicalize(bundle.policy) : members[policyAt]!.slice(policyMemberPrefix.length) };
}

const policyMemberPrefix = '"policy":';

/**
 * The bundle's canonical text as received, and its policy's within it: the members around the
 * policy are written from the parsed bundle (small) and must frame the text exactly; the policy
 * (most of the bundle) is the text between them, never written again (issue 17: the bundle's
 * canonical text was about 23 KB of the 407 KB allocated per simulated agent at start-up).
 * Undefined when the members do not frame it (never for receivedBundleText's output): the caller
 * then writes the texts out as before.
 */
function receivedBundleTexts(bundle: PolicyBundleDocument, text: string): CanonicalBundleTexts | undefined {
  const names = plainMemberNames(bundle);
  if (names === undefined) return undefined;
  names.sort();
  const policyAt = names.indexOf('policy');
  if (policyAt === -1) return undefined;
  const head = `{${canonicalMembers(bundle, names.slice(0, policyAt)).map((member) => `${member},`).join('')}${policyMemberPrefix}`;
  const tail = `${canonicalMembers(bundle, names.slice(policyAt + 1)).map((member) => `,${member}`).join('')}}`;
  if (text.length <= head.length + tail.length || !text.startsWith(head) || !text.endsWith(tail)) return undefined;
  return { bundle: text, policy: text.slice(head.length, text.length - tail.length) };
}

declare const receivedBundleTextBrand: unique symbol;

/**
 * A bundle's canonical text as it came in one frame, for one parsed bundle object: an opaque
 * handle that only receivedBundleText issues (the text and the bundle it was cut beside live in
 * issuedBundleTexts, keyed by the handle, which holds nothing itself). verifyPolicyBundle uses the
 * text only for that bundle object, so no caller can pair a bundle with a text signed for another
 * one; anything else (a forged handle, another bundle) takes the path that writes the bundle out.
 * Not guarded: the caller changing that parsed object in place between the cut and the check (the
 * agent hands the frame's body straight to the check and keeps no other reference to it).
 */
export interface ReceivedBundleText {
  readonly [receivedBundleTextBrand]: true;
}

/** Weak: an issued text lives as long as its handle, that is until the agent has checked the bundle. */
const issuedBundleTexts = new WeakMap<ReceivedBundleText, { readonly bundle: object; readonly text: string }>();

function issueReceivedBundleText(bundle: object, text: string): ReceivedBundleText {
  const handle = Object.freeze(Object.create(null) as object) as ReceivedBundleText;
  issuedBundleTexts.set(handle, { bundle, text });
  return handle;
}

/** The start of a canonical POLICY_BUNDLE frame: `body` sorts first among the envelope's members, `signed` is the body's only one, `bundle` sorts before `sig`. */
const bundleFramePrefix = '{"body":{"signed":{"bundle":';

/**
 * canonicalize(signed.bundle), cut out of the POLICY_BUNDLE frame that carried it, when the
 * parser proved the frame's text is exactly canonicalize of the parsed frame (DecodedMessage
 * .canonical): that text is then `{"body":{"signed":{"bundle":` + canonicalize(bundle) + `,"sig":`
 * + canonicalize(sig) + `}}` + the envelope's other members, all but the bundle written here from
 * the parsed frame (a few hundred bytes) and required to match. Returned as a handle tied to the
 * message's parsed bundle object (ReceivedBundleText). Undefined for any other frame: the
 * verifier writes the bundle out as before, so such a frame is accepted or refused as before.
 */
export function receivedBundleText(message: { readonly envelope: SignedEnvelope; readonly body: unknown; readonly text?: string; readonly canonical?: boolean }): ReceivedBundleText | undefined {
  const { envelope, text } = message;
  if (message.canonical !== true || text === undefined || envelope.type !== 'POLICY_BUNDLE' || envelope.body !== message.body) return undefined;
  const signed = (message.body as { signed?: unknown }).signed as Partial<SignedPolicyBundle> | undefined;
  if (typeof signed !== 'object' || signed === null || typeof signed.sig !== 'object' || signed.sig === null) return undefined;
  const bundle = signed.bundle;
  if (typeof bundle !== 'object' || bundle === null) return undefined;
  const { body: _body, ...rest } = envelope;
  let tail: string;
  try {
    tail = `,"sig":${canonicalize(signed.sig)}}},${canonicalize(rest).slice(1)}`;
  } catch {
    return undefined;
  }
  if (text.length <= bundleFramePrefix.length + tail.length || !text.startsWith(bundleFramePrefix) || !text.endsWith(tail)) return undefined;
  return issueReceivedBundleText(bundle, text.slice(bundleFramePrefix.length, text.length - tail.length));
}

/** The member names of a plain object whose own members are all enumerable data members named by strings; undefined otherwise. */
function plainMemberNames(object: object): string[] | undefined {
  const prototype = Object.getPrototypeOf(object) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  const names: string[] = [];
  for (const key of Reflect.ownKeys(object)) {
    if (typeof key === 'symbol') return undefined;
    const descriptor = Object.getOwnPropertyDescriptor(object, key);
    if (descriptor === undefined || !descriptor.enumerable || !('value' in descriptor)) return undefined;
    names.push(key);
  }
  return names;
}

interface ParsedBundlePolicy {
  readonly policy: Policy;
  readonly devicePolicy: Policy;
}

/**
 * Parses of bundle policies by their canonical text, shared by every bundle that carries the same
 * one (the devices of one tag set in one revision): parsePolicy's result is deeply frozen, so
 * sharing it cannot let one holder change another's. Bounded; the oldest entry goes first. A
 * real agent holds one bundle, so this only pays off where many agents share a process.
 */
const heldPolicies = new Map<string, ParsedBundlePolicy>();
const heldPoliciesMax = 64;

/** `text`: the policy's canonical text, from the signature check's pass over the bundle. */
function parseBundlePolicy(bundle: PolicyBundleDocument, text: string): ParsedBundlePolicy {
  let parsed = heldPolicies.get(text);
  if (parsed === undefined) {
    parsed = parseBundlePolicyText(text);
    if (heldPolicies.size >= heldPoliciesMax) heldPolicies.delete(heldPolicies.keys().next().value!);
    heldPolicies.set(text, parsed);
  }
  if (parsed.policy.revision !== bundle.version) {
    throw new SdcError('POLICY_BUNDLE_INVALID', `policy revision ${String(parsed.policy.revision)} is not the bundle version ${bundle.version}`, { path: 'policy.revision' });
  }
  return parsed;
}

/** From the text, not the received tree: JSON.parse's strings are new, not slices of the frame. */
function parseBundlePolicyText(text: string): ParsedBundlePolicy {
  let policy: Policy;
  try {
    policy = parsePolicy(text);
  } catch (error) {
    const path = SdcError.is(error) ? String(error.details?.path ?? '$') : '$';
    throw new SdcError('POLICY_BUNDLE_INVALID', `policy bundle's policy: ${SdcError.is(error) ? error.message : String(error)}`, { path: `policy.${path}` }, { cause: error });
  }
  return { policy, devicePolicy: frozenDeep(devicePolicyOf(policy)) };
}

/** devicePolicyOf copies the rules it trims; frozen like parsePolicy's, since holders share it. */
function frozenDeep<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const member of Object.values(value)) frozenDeep(member);
    Object.freeze(value);
  }
  return value;
}

function checkValidity(bundle: PolicyBundleDocument, nowMs: number | undefined): void {
  const validityMs = bundle.expires_at - bundle.issued_at;
  if (!(validityMs > 0 && validityMs <= policyBundleLimits.validityMsMax)) {
    throw new SdcError('POLICY_BUNDLE_EXPIRED', `policy bundle validity ${validityMs} ms is outside (0, ${policyBundleLimits.validityMsMax}]`);
  }
  if (nowMs !== undefined && nowMs >= bundle.expires_at) {
    throw new SdcError('POLICY_BUNDLE_EXPIRED', `policy bundle expired ${nowMs - bundle.expires_at} ms ago`, { expiresAt: bundle.expires_at });
  }
}

// ---------------------------------------------------------------------------------------------
// Enforcement (agent)

export interface BundleCommandFacts {
  readonly opcode: string;
  /** Size of the command's canonical arguments (argsBytesMax conditions). */
  readonly argsBytes: number;
  /** The gateway's clock (time windows are judged on the control plane's time). */
  readonly nowMs: number;
  /**
   * Who asked for the command, when the signed command says so (`requester`). Absent (a command
   * without one): the command passes only if the bundle would allow it for some role.
   */
  readonly actor?: PolicyActor;
  /** Approvers whose embedded approvals were verified; see docs/policy.md on approvals. */
  readonly approvals?: readonly PolicyActor[];
}

/** A verified bundle (tests, the control plane's own checks) or what a device keeps of one. */
export type EnforcedPolicyBundle = HeldPolicyBundle | VerifiedPolicyBundle;

function heldOf(bundle: EnforcedPolicyBundle): HeldPolicyBundle {
  return 'held' in bundle ? bundle.held : bundle;
}

/** Stands in for the requester when the command does not name one; never a real user id (contains a space). */
const unnamedRequesterId = 'unnamed requester';

/**
 * The bundle's decision for a command. With an actor, exactly the engine's. Without one, the
 * command is allowed when some role would be allowed: deny rules (which apply to every role
 * they name) and opcodes no rule allows are refused; a deny aimed at one role only cannot be
 * told apart from another role's allow, and the control plane's own check covers that case.
 */
export function evaluatePolicyBundle(bundle: EnforcedPolicyBundle, facts: BundleCommandFacts): PolicyDecision {
  const held = heldOf(bundle);
  const device = { id: held.deviceId, tags: held.deviceTags };
  const request = (actor: PolicyActor) => ({
    actor, opcode: facts.opcode, device, nowMs: facts.nowMs, argsBytes: facts.argsBytes,
    ...(facts.approvals === undefined ? {} : { approvals: facts.approvals }),
  });
  // Rate limits, posture and reasons were judged by the control plane at admission; the device cannot.
  const policy = held.devicePolicy;
  if (facts.actor !== undefined) return evaluatePolicy(policy, request(facts.actor));
  let firstDeny: PolicyDecision | undefined;
  for (const role of policyRoles) {
    const decision = evaluatePolicy(policy, request({ id: unnamedRequesterId, role }));
    if (decision.decision === 'allow') return decision;
    firstDeny ??= decision;
  }
  return firstDeny!;
}

/** The agent's check before executing: undefined when the bundle allows, else the POLICY_BUNDLE_DENIED refusal. */
export function bundleRefusal(bundle: EnforcedPolicyBundle, facts: BundleCommandFacts): SdcError | undefined {
  const decision = evaluatePolicyBundle(bundle, facts);
  if (decision.decision === 'allow') return undefined;
  const { version } = heldOf(bundle);
  return new SdcError('POLICY_BUNDLE_DENIED', `policy bundle version ${version}: ${decision.reason}`, {
    version, ...(decision.ruleId === undefined ? {} : { ruleId: decision.ruleId }),
  });
}

/**
 * The device's whole check of one command against its bundle, approvals included: undefined when
 * the bundle allows it. A command that names its requester (`requester`, signed by the control
 * plane) is judged for exactly that actor, so role-specific rules hold on the device; one that
 * does not (older control planes, OTA rollouts) is judged as evaluatePolicyBundle does without an
 * actor ("allowed for some role"). When the plain decision refuses and an allow rule only waits
 * for approvals and the command carries some (`approval`, core/protocol/approvals.ts, or an
 * approved OTA rollout's `rollout_approval`, core/ota/rollout-approval.ts), they are
 * verified with the bundle's approver keys against that rule's condition (a refusal is the
 * approval's own code: APPROVAL_SIGNATURE_INVALID, APPROVAL_BY_REQUESTER, ...), and the command is
 * evaluated again as asked by its requester (in the signed role, or else in each role), with the
 * verified approvers.
 */
export function commandBundleRefusal(enforced: EnforcedPolicyBundle, command: SignedCommand, ports: { nowMs: number; provider: Ed25519Provider; sha256: Sha256 }): SdcError | undefined {
  const bundle = heldOf(enforced);
  const facts = { opcode: command.opcode, argsBytes: commandArgsBytes(command.args), nowMs: ports.nowMs };
  const named = command.requester === undefined ? undefined : { id: command.requester.name, role: command.requester.role };
  const plain = bundleRefusal(bundle, named === undefined ? facts : { ...facts, actor: named });
  // A rollout's kernel commands carry the rollout's approvals instead (core/ota/rollout-approval.ts); never both.
  const rollout = command.approval === undefined ? command.rollout_approval : undefined;
  if (plain === undefined || (command.approval === undefined && rollout === undefined)) return plain;
  const requester = command.approval?.requested_by ?? rollout!.subject.requested_by;
  if (named !== undefined && named.id !== requester) {
    return new SdcError('POLICY_BUNDLE_DENIED', `command names requester ${named.id} but its approvals were asked by ${requester}`, { version: bundle.version });
  }
  let approvalRefusal: SdcError | undefined;
  for (const role of named === undefined ? policyRoles : [named.role]) {
    const actor = { id: requester, role };
    const pending = evaluatePolicyBundle(bundle, { ...facts, actor }).approval;
    if (pending === undefined) continue;
    const verify = rollout === undefined ? verifyCommandApprovals : verifyRolloutCommandApprovals;
    const verdict = verify({
      command, condition: { count: pending.count, roles: pending.roles }, resolveApproverKey: (kid) => bundle.approverKeys.get(kid),
      provider: ports.provider, sha256: ports.sha256,
    });
    if (!verdict.valid) {
      approvalRefusal ??= new SdcError(verdict.code, `policy bundle version ${bundle.version}, rule ${pending.ruleId}: ${verdict.reason}`, { version: bundle.version, ruleId: pending.ruleId });
      continue;
    }
    const approvals = verdict.approvers.map((name) => ({ id: name, role: [...bundle.approverKeys.values()].find((key) => key.approver === name)!.role }));
    if (bundleRefusal(bundle, { ...facts, actor, approvals }) === undefined) return undefined;
  }
  return approvalRefusal ?? plain;
}

/** Size the control plane's admission and the agent's check both use for argsBytesMax. */
export function commandArgsBytes(args: unknown): number {
  return canonicalBytes(args).length;
}
