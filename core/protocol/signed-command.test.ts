import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { SdcError } from '../errors/index.js';
import { createNobleEd25519Provider } from '../crypto/ed25519-noble.js';
import { signCommand, verifyCommand, type UnsignedCommand } from './signed-command.js';
import type { SignedCommand } from './messages/command.js';

const provider = createNobleEd25519Provider();
const seed = new Uint8Array(randomBytes(32));
const publicKey = provider.publicKeyFromSeed(seed);
const resolveKey = (kid: string) => (kid === 'cp-1' ? publicKey : undefined);
const base: UnsignedCommand = {
  id: 'cmd_1', device_id: 'dev-1', opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 10 },
  issued_at: 1_000_000, expires_at: 1_060_000, device_seq: 7, issuer: 'control-plane',
};
const signed = signCommand({ command: base, kid: 'cp-1', seed, provider });
const verify = (command: SignedCommand, nowMs = 1_000_500) => verifyCommand({ command, deviceId: 'dev-1', resolveKey, provider, nowMs });
const codeOf = (fn: () => void) => { try { fn(); return undefined; } catch (e) { assert.ok(SdcError.is(e)); return e.code; } };

test('a signed command verifies on its device before it expires', () => {
  assert.equal(codeOf(() => verify(signed)), undefined);
});

test('changing any signed field is refused', () => {
  const changes: Array<Partial<SignedCommand>> = [
    { id: 'cmd_2' }, { opcode: 'EXEC_LOCK_SCREEN', args: {} }, { args: { limit: 11 } }, { issued_at: 999_999 },
    { expires_at: 9_000_000 }, { device_seq: 8 }, { issuer: 'someone-else' },
  ];
  for (const change of changes) assert.equal(codeOf(() => verify({ ...signed, ...change })), 'CRYPTO_SIGNATURE_INVALID', JSON.stringify(change));
});

test('the requester is signed: renaming its role, its name, or stripping it is refused; a command without one signs as before', () => {
  // The device judges a command in its requester's role (core/protocol/policy-bundle.ts), so an
  // unsigned requester would let anyone on the path escape a deny aimed at one role.
  const named = signCommand({ command: { ...base, requester: { name: 'olga', role: 'operator' } }, kid: 'cp-1', seed, provider });
  assert.equal(codeOf(() => verify(named)), undefined);
  const { requester: _requester, ...stripped } = named;
  const tampered: SignedCommand[] = [
    { ...named, requester: { name: 'olga', role: 'admin' } },
    { ...named, requester: { name: 'root', role: 'operator' } },
    stripped,
    { ...signed, requester: { name: 'olga', role: 'admin' } },
  ];
  for (const command of tampered) assert.equal(codeOf(() => verify(command)), 'CRYPTO_SIGNATURE_INVALID', JSON.stringify(command.requester ?? null));
  // Unchanged bytes for a command that names no requester: older devices and kernels verify it as before.
  assert.equal(signCommand({ command: base, kid: 'cp-1', seed, provider }).sig.value, signed.sig.value);
});

test('any single-bit change of the signature is refused', () => {
  fc.assert(fc.property(fc.nat({ max: 85 }), fc.nat({ max: 5 }), (index, bit) => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const chars = signed.sig.value.split('');
    chars[index] = alphabet[alphabet.indexOf(chars[index]!) ^ (1 << bit)]!;
    const code = codeOf(() => verify({ ...signed, sig: { ...signed.sig, value: chars.join('') } }));
    assert.ok(code === 'CRYPTO_SIGNATURE_INVALID' || code === 'CRYPTO_BAD_SIGNATURE_ENCODING', code);
  }), { numRuns: 300 });
});

test('wrong device, unknown key, expiry and bad TTL are refused with their codes', () => {
  assert.equal(codeOf(() => verifyCommand({ command: signed, deviceId: 'dev-2', resolveKey, provider, nowMs: 1_000_500 })), 'COMMAND_DEVICE_MISMATCH');
  assert.equal(codeOf(() => verify({ ...signed, sig: { ...signed.sig, kid: 'cp-9' } })), 'CRYPTO_UNKNOWN_KID');
  assert.equal(codeOf(() => verify(signed, 1_060_000)), 'COMMAND_EXPIRED');
  assert.equal(codeOf(() => signCommand({ command: { ...base, expires_at: base.issued_at }, kid: 'cp-1', seed, provider })), 'COMMAND_TTL_INVALID');
  assert.equal(codeOf(() => signCommand({ command: { ...base, opcode: 'EXEC_NOPE' as never }, kid: 'cp-1', seed, provider })), 'PROTO_UNKNOWN_OPCODE');
});
