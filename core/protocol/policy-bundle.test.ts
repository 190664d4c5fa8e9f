import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { signCommand } from './signed-command.js';
import { parsePolicy, evaluatePolicy, policyRoles, type Policy } from './policy.js';
import { nobleSha256 } from '../crypto/sha256-noble.js';
import { base64urlFromBytes } from '../crypto/bytes.js';
import { approvalSubjectHash, approvalSubjectOf, signApproval } from './approvals.js';
import type { SignedCommand } from './messages/command.js';
import { canonicalize } from './canonical-json.js';
import {
  bundleRefusal, commandBundleRefusal, cutPolicyBundle, evaluatePolicyBundle, policyBundleLimits, policyBundleSigningInput, signPolicyBundle, signPolicyBundleText, verifyPolicyBundle, type SignedPolicyBundle,
} from './policy-bundle.js';

const provider = createNobleEd25519Provider();
const seed = new Uint8Array(32).fill(7);
const otherSeed = new Uint8Array(32).fill(9);
const publicKey = provider.publicKeyFromSeed(seed);
const resolveKey = (kid: string) => (kid === 'cp-1' ? publicKey : undefined);
const issuedAtMs = 1_764_000_000_000;

const policy: Policy = parsePolicy({
  version: 1, revision: 5,
  rules: [
    { id: 'ops-basic', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_GET_STATUS', 'EXEC_LOCK_SCREEN'], devices: '*' },
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'no-lock-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_LOCK_SCREEN'], devices: { ids: ['lab-*'] } },
    { id: 'kiosk-only', effect: 'deny', roles: '*', opcodes: ['EXEC_GET_PROCESS_LIST'], devices: { tags: ['kiosk'] } },
    { id: 'other-device', effect: 'deny', roles: '*', opcodes: '*', devices: { ids: ['prod-7'] } },
  ],
});

function bundleFor(deviceId: string, options: { version?: number; tags?: string[]; at?: number; validityMs?: number; seedBytes?: Uint8Array } = {}): SignedPolicyBundle {
  const version = options.version ?? 5;
  const bundle = cutPolicyBundle({
    policy: { ...policy, revision: version }, version, device: { id: deviceId, tags: options.tags ?? [] },
    issuedAtMs: options.at ?? issuedAtMs, ...(options.validityMs === undefined ? {} : { validityMs: options.validityMs }),
  });
  return signPolicyBundle({ bundle, kid: 'cp-1', seed: options.seedBytes ?? seed, provider });
}

const verify = (signed: unknown, extra: { deviceId?: string; nowMs?: number | undefined; held?: { version: number; issuedAtMs: number } } = {}) =>
  verifyPolicyBundle({ signed, deviceId: extra.deviceId ?? 'lab-1', resolveKey, provider, nowMs: 'nowMs' in extra ? extra.nowMs : issuedAtMs + 1_000, ...(extra.held ? { held: extra.held } : {}) });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(SdcError.is(error), String(error));
    return error.code;
  }
}

test('a bundle keeps only the rules that select its device', () => {
  const ids = (signed: SignedPolicyBundle) => ((signed.bundle.policy as Policy).rules).map((rule) => rule.id);
  assert.deepEqual(ids(bundleFor('lab-1')), ['ops-basic', 'admin-all', 'no-lock-lab']);
  assert.deepEqual(ids(bundleFor('office-1', { tags: ['kiosk'] })), ['ops-basic', 'admin-all', 'kiosk-only']);
  assert.deepEqual(ids(bundleFor('prod-7')), ['ops-basic', 'admin-all', 'other-device']);
});

test('a signed bundle verifies on its device, and its policy is the one cut', () => {
  const verified = verify(bundleFor('lab-1'));
  assert.equal(verified.bundle.version, 5);
  assert.equal(verified.policy.rules.length, 3);
});

test('a bad signature, an unknown key or a changed field is refused POLICY_BUNDLE_SIGNATURE_INVALID', () => {
  const signed = bundleFor('lab-1');
  assert.equal(codeOf(() => verify(bundleFor('lab-1', { seedBytes: otherSeed }))), 'POLICY_BUNDLE_SIGNATURE_INVALID');
  assert.equal(codeOf(() => verify({ ...signed, sig: { ...signed.sig, kid: 'cp-2' } })), 'POLICY_BUNDLE_SIGNATURE_INVALID');
  const widened = { ...signed, bundle: { ...signed.bundle, expires_at: signed.bundle.expires_at + 1 } };
  assert.equal(codeOf(() => verify(widened)), 'POLICY_BUNDLE_SIGNATURE_INVALID');
  const rulesDropped = { ...signed, bundle: { ...signed.bundle, policy: { version: 1, revision: 5, rules: [] } } };
  assert.equal(codeOf(() => verify(rulesDropped)), 'POLICY_BUNDLE_SIGNATURE_INVALID');
});

test('a command signature never verifies as a bundle (separate signing prefixes)', () => {
  const command = signCommand({
    command: { id: 'c1', device_id: 'lab-1', opcode: 'EXEC_GET_STATUS', args: {}, issued_at: 1, expires_at: 2, device_seq: 1, issuer: 'cp' },
    kid: 'cp-1', seed, provider,
  });
  const signed = bundleFor('lab-1');
  assert.equal(codeOf(() => verify({ ...signed, sig: command.sig })), 'POLICY_BUNDLE_SIGNATURE_INVALID');
});

test('a bundle for another device is refused POLICY_BUNDLE_DEVICE_MISMATCH', () => {
  assert.equal(codeOf(() => verify(bundleFor('lab-2'))), 'POLICY_BUNDLE_DEVICE_MISMATCH');
});

test('a lower version is refused POLICY_BUNDLE_VERSION_STALE; the same version is taken only if issued no earlier', () => {
  const held = { version: 5, issuedAtMs };
  assert.equal(codeOf(() => verify(bundleFor('lab-1', { version: 4 }), { held })), 'POLICY_BUNDLE_VERSION_STALE');
  assert.equal(codeOf(() => verify(bundleFor('lab-1', { version: 5, at: issuedAtMs - 1 }), { held })), 'POLICY_BUNDLE_VERSION_STALE');
  assert.equal(codeOf(() => verify(bundleFor('lab-1', { version: 5 }), { held })), undefined);
  assert.equal(codeOf(() => verify(bundleFor('lab-1', { version: 6 }), { held })), undefined);
});

test('an expired bundle is refused POLICY_BUNDLE_EXPIRED, unless reloading the held copy (nowMs undefined)', () => {
  const signed = bundleFor('lab-1', { validityMs: 60_000 });
  assert.equal(codeOf(() => verify(signed, { nowMs: issuedAtMs + 59_999 })), undefined);
  assert.equal(codeOf(() => verify(signed, { nowMs: issuedAtMs + 60_000 })), 'POLICY_BUNDLE_EXPIRED');
  assert.equal(codeOf(() => verify(signed, { nowMs: undefined })), undefined);
  const tooLong = bundleFor('lab-1', { validityMs: policyBundleLimits.validityMsMax + 1 });
  assert.equal(codeOf(() => verify(tooLong, { nowMs: undefined })), 'POLICY_BUNDLE_EXPIRED');
});

test('malformed bundles are refused POLICY_BUNDLE_INVALID with the path', () => {
  const signed = bundleFor('lab-1');
  for (const bad of [null, 'x', {}, { ...signed, extra: 1 }, { ...signed, bundle: { ...signed.bundle, format: 2 } }, { bundle: signed.bundle }]) {
    assert.equal(codeOf(() => verify(bad)), 'POLICY_BUNDLE_INVALID', JSON.stringify(bad)?.slice(0, 80));
  }
  // A well-signed bundle whose policy does not parse (a bug or a compromised key): refused, with the rule's path.
  const broken = cutPolicyBundle({ policy, version: 5, device: { id: 'lab-1' }, issuedAtMs });
  const badPolicy = signPolicyBundle({ bundle: { ...broken, policy: { version: 1, revision: 5, rules: [{ id: 'x', effect: 'maybe' }] } }, kid: 'cp-1', seed, provider });
  try {
    verify(badPolicy);
    assert.fail('accepted');
  } catch (error) {
    assert.ok(SdcError.is(error));
    assert.equal(error.code, 'POLICY_BUNDLE_INVALID');
    assert.equal(error.details.path, 'policy.rules[0].effect');
  }
  const wrongRevision = signPolicyBundle({ bundle: { ...broken, version: 6 }, kid: 'cp-1', seed, provider });
  assert.equal(codeOf(() => verify(wrongRevision)), 'POLICY_BUNDLE_INVALID');
});

test('a bundle too large for one frame is not signed (POLICY_BUNDLE_TOO_LARGE)', () => {
  const rules = Array.from({ length: 200 }, (_, index) => ({ id: `r${index}`, description: 'd'.repeat(400), effect: 'allow', roles: '*', opcodes: '*', devices: '*' }));
  const big = parsePolicy({ version: 1, revision: 1, rules });
  const bundle = cutPolicyBundle({ policy: big, version: 1, device: { id: 'lab-1' }, issuedAtMs });
  assert.equal(codeOf(() => signPolicyBundle({ bundle, kid: 'cp-1', seed, provider })), 'POLICY_BUNDLE_TOO_LARGE');
});

test('signPolicyBundleText: the signature over the prefix and the canonical bundle, and exactly canonicalize(signed), non-ASCII text included', () => {
  fc.assert(fc.property(fc.string({ maxLength: 40, unit: 'grapheme' }), fc.array(fc.constantFrom('kiosk', 'lab', 'zone-ü', 'x'), { maxLength: 3 }), (description, tags) => {
    const described = parsePolicy({ version: 1, revision: 5, rules: [{ id: 'r', description, effect: 'allow', roles: '*', opcodes: '*', devices: '*' }] });
    const bundle = cutPolicyBundle({ policy: described, version: 5, device: { id: 'lab-1', tags }, issuedAtMs });
    const { signed, text } = signPolicyBundleText({ bundle, kid: 'cp-1', seed, provider });
    assert.equal(text, canonicalize(signed));
    assert.deepEqual(signed, signPolicyBundle({ bundle, kid: 'cp-1', seed, provider }));
    assert.ok(provider.verify(publicKey, policyBundleSigningInput(bundle), Uint8Array.from(Buffer.from(signed.sig.value, 'base64url'))));
  }), { numRuns: 40 });
});

test('signing a fleet\'s bundles walks a frozen policy\'s rules once, not once per device (issue 17); a mutable policy is walked each time', () => {
  // Canonical JSON lists an object's own keys once per pass over it: the rule's proxy counts the passes.
  let passes = 0;
  const counted = (frozen: boolean) => {
    const target = { id: 'counted', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' };
    if (frozen) Object.freeze(Object.freeze(target).roles);
    return new Proxy(target, {
      ownKeys(inner) {
        passes += 1;
        return Reflect.ownKeys(inner);
      },
    }) as unknown as Policy['rules'][number];
  };
  const signFor = (source: Policy, deviceId: string) => signPolicyBundleText({
    bundle: cutPolicyBundle({ policy: source, version: 9, device: { id: deviceId }, issuedAtMs }), kid: 'cp-1', seed, provider,
  });
  const frozenPolicy = { version: 1, revision: 9, rules: Object.freeze([counted(true), ...policy.rules]) } as Policy;
  const first = signFor(frozenPolicy, 'dev-1');
  const afterFirst = passes;
  const texts = ['dev-2', 'dev-3', 'lab-4'].map((deviceId) => signFor(frozenPolicy, deviceId));
  // One pass per device before (the bundle's canonicalization).
  assert.equal(passes, afterFirst);
  for (const signed of [first, ...texts]) {
    assert.equal(signed.text, canonicalize(JSON.parse(JSON.stringify(signed.signed))));
    assert.equal(verify(signed.signed, { deviceId: signed.signed.bundle.device_id }).policy.rules[0]!.id, 'counted');
  }
  assert.deepEqual((texts[2]!.signed.bundle.policy as Policy).rules.map((rule) => rule.id), ['counted', 'ops-basic', 'admin-all', 'no-lock-lab']);
  // Rules that could still change are written out each time, so a change is signed as it is.
  const mutableRules = [counted(false)];
  const mutablePolicy = { version: 1, revision: 9, rules: mutableRules } as unknown as Policy;
  passes = 0;
  signFor(mutablePolicy, 'dev-1');
  signFor(mutablePolicy, 'dev-2');
  assert.equal(passes, 2);
});

test('verifyPolicyBundle walks the bundle once: the policy for its shared parse comes from the signature check\'s text (issue 17)', () => {
  // Canonical JSON lists an object's own keys once per pass over it: the rule's proxy counts the passes.
  const received = JSON.parse(JSON.stringify(bundleFor('lab-1'))) as SignedPolicyBundle;
  let passes = 0;
  const rules = (received.bundle.policy as { rules: object[] }).rules;
  rules[0] = new Proxy(rules[0]!, {
    ownKeys(target) {
      passes += 1;
      return Reflect.ownKeys(target);
    },
  });
  const verified = verify(received);
  // The signing input, then the policy again for the shared parse, were two passes before.
  assert.equal(passes, 1);
  assert.deepEqual(verified.policy.rules.map((rule) => rule.id), ['ops-basic', 'admin-all', 'no-lock-lab']);
});

test('verifyPolicyBundle: signedText is exactly canonicalize(signed), and the same refusals, for any description and tags', () => {
  fc.assert(fc.property(fc.string({ maxLength: 40, unit: 'grapheme' }), fc.array(fc.constantFrom('kiosk', 'lab', 'zone-ü', 'x'), { maxLength: 3 }), (description, tags) => {
    const described = parsePolicy({ version: 1, revision: 5, rules: [{ id: 'r', description, effect: 'allow', roles: '*', opcodes: '*', devices: '*' }] });
    const signed = signPolicyBundle({ bundle: cutPolicyBundle({ policy: described, version: 5, device: { id: 'lab-1', tags }, issuedAtMs }), kid: 'cp-1', seed, provider });
    // As a frame or a file delivers it: parsed from text, members in another order than the signer's.
    const received = JSON.parse(JSON.stringify({ sig: signed.sig, bundle: Object.fromEntries(Object.entries(signed.bundle).reverse()) })) as unknown;
    const verified = verify(received);
    assert.equal(verified.signedText, canonicalize(signed));
    assert.deepEqual(verified.policy, described);
  }), { numRuns: 40 });
  // Not plain (an accessor), not canonical (a lone surrogate): refused as before, not verified over another text.
  const signed = bundleFor('lab-1');
  const withAccessor = { sig: signed.sig, bundle: { ...signed.bundle } };
  Object.defineProperty(withAccessor.bundle, 'device_id', { get: () => 'lab-1', enumerable: true });
  assert.equal(codeOf(() => verify(withAccessor)), 'POLICY_BUNDLE_INVALID');
  const lone = JSON.parse(JSON.stringify(signed)) as SignedPolicyBundle;
  (lone.bundle.policy as { rules: Array<{ description?: string }> }).rules[0]!.description = '\ud800';
  assert.equal(codeOf(() => verify(lone)), 'POLICY_BUNDLE_INVALID');
});

test('enforcement: a deny for every role refuses POLICY_BUNDLE_DENIED; an opcode some role may send passes without a named requester', () => {
  const lab = verify(bundleFor('lab-1'));
  const facts = { argsBytes: 2, nowMs: issuedAtMs };
  assert.equal(bundleRefusal(lab, { ...facts, opcode: 'EXEC_LOCK_SCREEN' })?.code, 'POLICY_BUNDLE_DENIED');
  assert.equal(bundleRefusal(lab, { ...facts, opcode: 'EXEC_LOCK_SCREEN' })?.details.ruleId, 'no-lock-lab');
  assert.equal(bundleRefusal(lab, { ...facts, opcode: 'EXEC_STAGE_UPDATE' }), undefined);
  const kiosk = verify(bundleFor('office-1', { tags: ['kiosk'] }), { deviceId: 'office-1' });
  assert.equal(bundleRefusal(kiosk, { ...facts, opcode: 'EXEC_GET_PROCESS_LIST' })?.code, 'POLICY_BUNDLE_DENIED');
  assert.equal(bundleRefusal(kiosk, { ...facts, opcode: 'EXEC_LOCK_SCREEN' }), undefined);
  // With a named requester the decision is exactly the engine's.
  assert.equal(bundleRefusal(kiosk, { ...facts, opcode: 'EXEC_STAGE_UPDATE', actor: { id: 'olga', role: 'operator' } })?.code, 'POLICY_BUNDLE_DENIED');
  const onlyAdmins = verify(signPolicyBundle({
    bundle: cutPolicyBundle({ policy: parsePolicy({ version: 1, revision: 5, rules: [{ id: 'a', effect: 'allow', roles: ['admin'], opcodes: ['EXEC_GET_STATUS'], devices: '*' }] }), version: 5, device: { id: 'lab-1' }, issuedAtMs }),
    kid: 'cp-1', seed, provider,
  }));
  assert.equal(bundleRefusal(onlyAdmins, { ...facts, opcode: 'EXEC_COMMIT_UPDATE' })?.details.ruleId, undefined);
  assert.equal(bundleRefusal(onlyAdmins, { ...facts, opcode: 'EXEC_COMMIT_UPDATE' })?.code, 'POLICY_BUNDLE_DENIED');
});

test('property: the bundle decides as the full policy does for its device, for every role', () => {
  const opcodes = ['EXEC_GET_STATUS', 'EXEC_LOCK_SCREEN', 'EXEC_GET_PROCESS_LIST', 'EXEC_COMMIT_UPDATE'];
  const devices = [{ id: 'lab-1', tags: [] }, { id: 'office-1', tags: ['kiosk'] }, { id: 'prod-7', tags: [] }, { id: 'labx', tags: ['kiosk'] }];
  fc.assert(fc.property(fc.constantFrom(...opcodes), fc.constantFrom(...devices), fc.constantFrom(...policyRoles), (opcode, device, role) => {
    const verified = verify(bundleFor(device.id, { tags: device.tags }), { deviceId: device.id });
    const actor = { id: 'u1', role };
    const local = evaluatePolicyBundle(verified, { opcode, argsBytes: 2, nowMs: issuedAtMs, actor });
    const central = evaluatePolicy(policy, { actor, opcode, device, nowMs: issuedAtMs, argsBytes: 2 });
    assert.deepEqual(local, central);
  }));
});

// ---------------------------------------------------------------------------------------------
// Approvals carried by a command, checked with the approver keys the bundle carries

const sha256 = nobleSha256;
const approverSeeds = { alice: new Uint8Array(32).fill(21), bob: new Uint8Array(32).fill(22) };
const approverEntries = (Object.keys(approverSeeds) as Array<keyof typeof approverSeeds>).map((name) => ({
  approver: name, role: 'approver' as const, kid: `${name}-1`, public_key: base64urlFromBytes(provider.publicKeyFromSeed(approverSeeds[name])),
}));
const approvalPolicy = parsePolicy({
  version: 1, revision: 3,
  rules: [{ id: 'updates-with-2', effect: 'allow', roles: ['operator'], opcodes: ['EXEC_STAGE_UPDATE'], devices: '*', conditions: { approval: { count: 2, roles: ['approver'] } } }],
});

function approvalBundle(withApprovers = true) {
  const bundle = cutPolicyBundle({ policy: approvalPolicy, version: 3, device: { id: 'lab-1' }, issuedAtMs, ...(withApprovers ? { approvers: approverEntries } : {}) });
  return verify(signPolicyBundle({ bundle, kid: 'cp-1', seed, provider }));
}

function approvedCommand(approvers: Array<keyof typeof approverSeeds>, options: { requestedBy?: string; breakSignatureOf?: string } = {}): SignedCommand {
  const base: SignedCommand = {
    id: 'c-42', device_id: 'lab-1', opcode: 'EXEC_STAGE_UPDATE', args: { version: '1.0.1', sha256: 'a'.repeat(64), size_bytes: 10 },
    issued_at: issuedAtMs, expires_at: issuedAtMs + 60_000, device_seq: 42, issuer: 'cp', sig: { alg: 'Ed25519', kid: 'cp-1', value: 'A'.repeat(86) },
  };
  if (approvers.length === 0) return base;
  const requestedBy = options.requestedBy ?? 'olga';
  const withBlock: SignedCommand = { ...base, approval: { requested_by: requestedBy, rule_id: 'updates-with-2', approvals: [{ approver: 'x', kid: 'x', decision: 'approve', expires_at: 1, sig: 'A'.repeat(86) }] } };
  const commandSha256 = approvalSubjectHash(approvalSubjectOf(withBlock)!, sha256);
  const approvals = approvers.map((name) => {
    const statement = { command_id: base.id, command_sha256: commandSha256, decision: 'approve' as const, approver: name, kid: `${name}-1`, expires_at: issuedAtMs + 30_000 };
    let sig = signApproval({ statement, seed: approverSeeds[name], provider });
    if (options.breakSignatureOf === name) sig = `${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
    return { approver: name, kid: `${name}-1`, decision: 'approve' as const, expires_at: statement.expires_at, sig };
  });
  return { ...base, approval: { requested_by: requestedBy, rule_id: 'updates-with-2', approvals } };
}

const ports = { nowMs: issuedAtMs + 1_000, provider, sha256 };

test('approvals: a command with two valid embedded approvals passes the bundle; without them it is denied', () => {
  const bundle = approvalBundle();
  assert.equal(commandBundleRefusal(bundle, approvedCommand(['alice', 'bob']), ports), undefined);
  assert.equal(commandBundleRefusal(bundle, approvedCommand([]), ports)?.code, 'POLICY_BUNDLE_DENIED');
});

test('approvals: too few, a bad signature, the requester approving, an unknown key are refused with the approval codes', () => {
  const bundle = approvalBundle();
  assert.equal(commandBundleRefusal(bundle, approvedCommand(['alice']), ports)?.code, 'APPROVAL_INSUFFICIENT');
  assert.equal(commandBundleRefusal(bundle, approvedCommand(['alice', 'bob'], { breakSignatureOf: 'bob' }), ports)?.code, 'APPROVAL_SIGNATURE_INVALID');
  assert.equal(commandBundleRefusal(bundle, approvedCommand(['alice', 'bob'], { requestedBy: 'alice' }), ports)?.code, 'APPROVAL_BY_REQUESTER');
  assert.equal(commandBundleRefusal(approvalBundle(false), approvedCommand(['alice', 'bob']), ports)?.code, 'APPROVAL_KEY_UNKNOWN');
});

test('approvals: the approver keys are part of the signed bundle, and a malformed key is POLICY_BUNDLE_INVALID', () => {
  const signed = signPolicyBundle({ bundle: cutPolicyBundle({ policy: approvalPolicy, version: 3, device: { id: 'lab-1' }, issuedAtMs, approvers: approverEntries }), kid: 'cp-1', seed, provider });
  const swapped = { ...signed, bundle: { ...signed.bundle, approvers: [{ ...approverEntries[0]!, public_key: approverEntries[1]!.public_key }, approverEntries[1]!] } };
  assert.equal(codeOf(() => verify(swapped)), 'POLICY_BUNDLE_SIGNATURE_INVALID');
  const twice = signPolicyBundle({ bundle: { ...signed.bundle, approvers: [approverEntries[0]!, approverEntries[0]!] }, kid: 'cp-1', seed, provider });
  assert.equal(codeOf(() => verify(twice)), 'POLICY_BUNDLE_INVALID');
});

test('a command that names its requester is judged for that role on the device: a deny aimed at one role holds (issue 12)', () => {
  // Operators may not read process lists on this device; admins may (admin-all). Without the role the device cannot tell.
  const roleDeny = parsePolicy({
    version: 1, revision: 6,
    rules: [...policy.rules, { id: 'no-ops-proc', effect: 'deny', roles: ['operator'], opcodes: ['EXEC_GET_PROCESS_LIST'], devices: '*' }],
  });
  const bundle = verify(signPolicyBundle({
    bundle: cutPolicyBundle({ policy: roleDeny, version: 6, device: { id: 'office-2', tags: [] }, issuedAtMs }), kid: 'cp-1', seed, provider,
  }), { deviceId: 'office-2' });
  const command = (requester?: { name: string; role: 'operator' | 'admin' }): SignedCommand => signCommand({
    command: {
      id: 'c-role', device_id: 'office-2', opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 5 }, issued_at: issuedAtMs, expires_at: issuedAtMs + 60_000, device_seq: 1, issuer: 'cp',
      ...(requester === undefined ? {} : { requester }),
    },
    kid: 'cp-1', seed, provider,
  });
  const ports = { nowMs: issuedAtMs + 1_000, provider, sha256: nobleSha256 };
  const denied = commandBundleRefusal(bundle, command({ name: 'olga', role: 'operator' }), ports);
  assert.equal(denied?.code, 'POLICY_BUNDLE_DENIED');
  assert.equal(denied?.details?.ruleId, 'no-ops-proc');
  assert.equal(commandBundleRefusal(bundle, command({ name: 'ada', role: 'admin' }), ports), undefined);
  // The engine's own answer for each: the device now agrees with the control plane.
  for (const role of ['operator', 'admin'] as const) {
    const engine = evaluatePolicy(roleDeny, { actor: { id: 'x', role }, opcode: 'EXEC_GET_PROCESS_LIST', device: { id: 'office-2', tags: [] }, nowMs: issuedAtMs, argsBytes: 11 });
    assert.equal(commandBundleRefusal(bundle, command({ name: 'x', role }), ports) === undefined, engine.decision === 'allow', role);
  }
  // A command without a requester (older control plane, OTA rollouts) keeps the "some role" reading.
  assert.equal(commandBundleRefusal(bundle, command(), ports), undefined);
});
