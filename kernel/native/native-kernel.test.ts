import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { runKernelContractSuite } from '../kernel-contract-suite.js';
import { buildRequest } from '../codec.js';
import { IoctlCode, KernelStatus, Opcode, WATCHDOG_REARMS_MAX } from '../generated/contract.js';
import { createMockTarget } from '../mock/mock-target.js';
import { encodeCommitUpdateRequest, encodePingRequest } from '../payloads.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { commandAuthorization } from '../command/authorization.js';
import { encodeCommandAttachment } from '../command/attachment.js';
import { encodeProvisionRequest } from '../command/provision.js';
import type { KernelTarget } from '../kernel-contract-suite.js';
import { createNativeTarget, reopenNativeTarget } from './native-target.js';
import { releaseLibraryForTests } from './test-support.js';

const agentSeed = new Uint8Array(32).fill(1);
const serviceSeed = new Uint8Array(32).fill(2);

const { libraryPath, skip } = releaseLibraryForTests();

runKernelContractSuite('native (koffi)', async () => createNativeTarget({ libraryPath, agentSeed, serviceSeed }), { skip });

test('native and mock give byte-identical refusals and pings for the same keys and inputs', { skip }, async () => {
  const ed25519 = createNodeEd25519Provider();
  const native = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  const mock = createMockTarget({ agentSeed, serviceSeed, clock: { nowMs: () => 0 } });
  let counter = 1n;
  try {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(...Object.values(IoctlCode), 0x222000, 0),
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((nonce) =>
          buildRequest({ ed25519, agentSeed, opcode: Opcode.EXEC_PING_KERNEL, counter: counter++, payload: encodePingRequest(nonce) })),
      ),
      fc.integer({ min: 0, max: 400 }),
      async (code, input, outLen) => {
        const a = await native.device.call(code, input, outLen);
        const b = await mock.device.call(code, input, outLen);
        assert.equal(a.status, b.status, `status for code ${code.toString(16)}`);
        assert.deepEqual(Buffer.from(a.output).toString('hex'), Buffer.from(b.output).toString('hex'));
      },
    ), { numRuns: 300, endOnFailure: true });
  } finally {
    native.device.close();
    native.cleanup();
  }
});

/**
 * The C scanner and the TypeScript one must agree on every control-plane-signed input, not only
 * on well-formed commands: valid commands are mutated (byte changes, cuts, insertions), re-signed
 * with the provisioned key so they reach the parser, and sent to both kernels in the same order.
 */
test('native and mock agree on every control-plane-signed command, mutated or not', { skip }, async () => {
  const ed25519 = createNodeEd25519Provider();
  const cpSeed = new Uint8Array(32).fill(3);
  const deviceId = 'diff-device';
  const native = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  // Both kernels judge expires_at on the machine's clock (the native library reads CLOCK_REALTIME).
  const mock = createMockTarget({ agentSeed, serviceSeed, clock: { nowMs: () => Date.now() } });
  const issuedAtMs = Date.now();
  let counter = 1n;
  const both = async (code: number, input: Uint8Array): Promise<number> => {
    const a = await native.device.call(code, input, 400);
    const b = await mock.device.call(code, input, 400);
    assert.equal(a.status, b.status, `status for ${Buffer.from(input).toString('latin1').slice(96)}`);
    assert.equal(Buffer.from(a.output).toString('hex'), Buffer.from(b.output).toString('hex'));
    return a.status;
  };
  const requestFor = (t: KernelTarget, opcode: keyof typeof Opcode, payload: Uint8Array, attachment?: Uint8Array) =>
    buildRequest({ ed25519: t.ed25519, agentSeed, opcode: Opcode[opcode], counter: counter++, payload, attachment });
  try {
    await both(IoctlCode.PROVISION_COMMAND_KEYS, requestFor(native, 'PROVISION_COMMAND_KEYS', encodeProvisionRequest({ deviceId, keys: [ed25519.publicKeyFromSeed(cpSeed)] })));
    const opcodeArgs = fc.oneof(
      fc.constant({ opcode: 'EXEC_ROLLBACK_UPDATE' as const, args: {} }),
      fc.constant({ opcode: 'EXEC_COMMIT_UPDATE' as const, args: { version: 'v1' } }),
      fc.constantFrom('v1', 'v2').map((version) => ({ opcode: 'EXEC_COMMIT_UPDATE' as const, args: { version } })),
      fc.integer({ min: 1, max: 50 }).map((limit) => ({ opcode: 'EXEC_GET_PROCESS_LIST' as const, args: { limit } })),
    );
    const mutation = fc.oneof(
      fc.constant((b: Uint8Array) => b),
      fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => (b: Uint8Array) => { const c = b.slice(); c[at % c.length]! ^= xor; return c; }),
      fc.nat().map((at) => (b: Uint8Array) => b.subarray(0, at % (b.length + 1))),
      fc.tuple(fc.nat(), fc.constantFrom(...'{}[],:"\\ 0-.eE9tfn'.split(''))).map(([at, ch]) => (b: Uint8Array) => {
        const i = at % (b.length + 1);
        return Uint8Array.from([...b.subarray(0, i), ch.charCodeAt(0), ...b.subarray(i)]);
      }),
    );
    await fc.assert(fc.asyncProperty(opcodeArgs, fc.integer({ min: 1, max: 600 }), fc.boolean(), mutation, fc.constantFrom('EXEC_ROLLBACK_UPDATE', 'EXEC_COMMIT_UPDATE') as fc.Arbitrary<'EXEC_ROLLBACK_UPDATE' | 'EXEC_COMMIT_UPDATE'>,
      async ({ opcode, args }, seq, ours, mutate, target) => {
        const command = signCommand({
          command: { id: `d${seq}`, device_id: ours ? deviceId : 'other-device', opcode, args, issued_at: issuedAtMs, expires_at: issuedAtMs + 86_400_000, device_seq: seq, issuer: 'diff' },
          kid: 'cp', seed: cpSeed, provider: ed25519,
        });
        const signedBytes = mutate(commandAuthorization(command).signedBytes);
        if (signedBytes.length === 0) return;
        const attachment = encodeCommandAttachment({ signedBytes, signature: ed25519.sign(cpSeed, signedBytes) });
        const payload = target === 'EXEC_COMMIT_UPDATE' ? encodeCommitUpdateRequest('v1') : new Uint8Array(0);
        await both(IoctlCode[target], requestFor(native, target, payload, attachment));
      },
    ), { numRuns: 400, endOnFailure: true });
  } finally {
    native.device.close();
    native.cleanup();
  }
});

test('a reopened native sandbox keeps its command keys and the seqs already run', { skip }, async () => {
  const ed25519 = createNodeEd25519Provider();
  const cpSeed = new Uint8Array(32).fill(3);
  const first = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  const set = { deviceId: 'persisted-01', keys: [ed25519.publicKeyFromSeed(cpSeed)] };
  const provision = async (target: KernelTarget, counter: bigint, keys = set.keys) => (await target.device.call(IoctlCode.PROVISION_COMMAND_KEYS,
    buildRequest({ ed25519, agentSeed, opcode: Opcode.PROVISION_COMMAND_KEYS, counter, payload: encodeProvisionRequest({ ...set, keys }) }), 200)).status;
  const rollback = commandAuthorization(signCommand({
    // Live on the native library's clock (CLOCK_REALTIME), which judges expires_at.
    command: { id: 'r1', device_id: set.deviceId, opcode: 'EXEC_ROLLBACK_UPDATE', args: {}, issued_at: Date.now(), expires_at: Date.now() + 86_400_000, device_seq: 7, issuer: 'test' },
    kid: 'cp', seed: cpSeed, provider: ed25519,
  }));
  const runRollback = async (target: KernelTarget, counter: bigint) => (await target.device.call(IoctlCode.EXEC_ROLLBACK_UPDATE,
    buildRequest({ ed25519, agentSeed, opcode: Opcode.EXEC_ROLLBACK_UPDATE, counter, payload: new Uint8Array(0), attachment: encodeCommandAttachment(rollback) }), 300)).status;
  try {
    assert.equal(await provision(first, 1n), 0);
    assert.equal(await runRollback(first, 2n), KernelStatus.BAD_STATE, 'authorized and run (nothing to roll back)');
    first.device.close();
    const again = reopenNativeTarget(first);
    try {
      assert.equal(await provision(again, 1n, [ed25519.publicKeyFromSeed(agentSeed)]), KernelStatus.PROVISION_DENIED, 'still provisioned after reopen');
      assert.equal(await provision(again, 2n), 0, 'the same keys are accepted as unchanged');
      assert.equal(await runRollback(again, 3n), KernelStatus.COMMAND_REPLAY, 'a command run before the restart does not run again');
    } finally {
      again.device.close();
    }
  } finally {
    first.cleanup();
  }
});

test('a closed native device refuses calls with KERNEL_CLOSED instead of touching freed memory', { skip }, async () => {
  const target = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  target.device.close();
  target.cleanup();
  await assert.rejects(target.device.call(IoctlCode.EXEC_GET_STATUS, new Uint8Array(0), 200), /closed/);
});

test('a reopened native sandbox re-arms an unconfirmed commit with its whole window, at most WATCHDOG_REARMS_MAX times; a stale watchdog file is dropped', { skip }, async () => {
  const ed25519 = createNodeEd25519Provider();
  const cpSeed = new Uint8Array(32).fill(3);
  const deviceId = 'watchdog-01';
  let seq = 1;
  const auth = (opcode: 'EXEC_STAGE_UPDATE' | 'EXEC_COMMIT_UPDATE', args: Record<string, unknown>) => commandAuthorization(signCommand({
    command: { id: `w${seq}`, device_id: deviceId, opcode, args, issued_at: Date.now(), expires_at: Date.now() + 86_400_000, device_seq: seq++, issuer: 'test' },
    kid: 'cp', seed: cpSeed, provider: ed25519,
  } as Parameters<typeof signCommand>[0]));
  const bridgeOf = (t: KernelTarget) => new IoctlKernelBridge({ device: t.device, ed25519, agentSeed, servicePublicKey: t.servicePublicKey, counterStart: 1n });
  const first = createNativeTarget({ libraryPath, agentSeed, serviceSeed });
  const install = async (bridge: IoctlKernelBridge, version: string, bytes: Uint8Array, watchdogMs?: number) => {
    const sha256 = new Uint8Array(createHash('sha256').update(bytes).digest());
    await bridge.stageUpdate({ path: first.putArtifact(`${version}.bin`, bytes), version, sha256 },
      auth('EXEC_STAGE_UPDATE', { version, sha256: Buffer.from(sha256).toString('hex'), size_bytes: bytes.length }));
    await bridge.commitUpdate(version, auth('EXEC_COMMIT_UPDATE', { version }), { sha256, watchdogMs });
  };
  try {
    const bridge = bridgeOf(first);
    await bridge.provisionCommandKeys({ deviceId, keys: [ed25519.publicKeyFromSeed(cpSeed)] });
    await install(bridge, '1.0.0', new Uint8Array([1]));
    await install(bridge, '2.0.0', new Uint8Array([2, 2]), 60_000);
    first.device.close();
    // The service restarts (a reboot) before the agent confirmed: the trial is still on, with a whole window.
    let again = reopenNativeTarget(first);
    const reopened = bridgeOf(again);
    let status = await reopened.getStatus();
    assert.deepEqual([status.currentVersion, status.previousVersion, status.watchdogArmed], ['2.0.0', '1.0.0', true]);
    assert.ok(status.watchdogRemainingMs > 0n && status.watchdogRemainingMs <= 60_000n, `remaining ${status.watchdogRemainingMs}`);
    await reopened.confirmUpdate('2.0.0');
    again.device.close();
    again = reopenNativeTarget(first);
    status = await bridgeOf(again).getStatus();
    assert.deepEqual([status.currentVersion, status.watchdogArmed], ['2.0.0', false], 'confirmed before the restart: not armed again');
    again.device.close();
    // A file naming another version than the current one (a commit that crashed before its switch) is stale.
    const stale = new Uint8Array(40);
    stale.set(new TextEncoder().encode('9.9.9'));
    new DataView(stale.buffer).setUint32(32, 60_000, true);
    writeFileSync(join(first.root, 'sandbox', 'watchdog'), stale);
    again = reopenNativeTarget(first);
    status = await bridgeOf(again).getStatus();
    assert.deepEqual([status.currentVersion, status.watchdogArmed], ['2.0.0', false]);
    assert.equal(existsSync(join(first.root, 'sandbox', 'watchdog')), false, 'the stale file is removed');
    again.device.close();
    // A crash loop: the service restarts again and again before anyone confirms 3.0.0. Re-armed
    // WATCHDOG_REARMS_MAX times, then the next open rolls back (the boot counter of a bootloader).
    const loop = bridgeOf(again = reopenNativeTarget(first));
    const bytes = new Uint8Array([3, 3, 3]);
    const sha256 = new Uint8Array(createHash('sha256').update(bytes).digest());
    await loop.stageUpdate({ path: first.putArtifact('3.0.0.bin', bytes), version: '3.0.0', sha256 },
      auth('EXEC_STAGE_UPDATE', { version: '3.0.0', sha256: Buffer.from(sha256).toString('hex'), size_bytes: 3 }));
    await loop.commitUpdate('3.0.0', auth('EXEC_COMMIT_UPDATE', { version: '3.0.0' }), { sha256, watchdogMs: 60_000 });
    again.device.close();
    for (let restart = 1; restart <= WATCHDOG_REARMS_MAX; restart++) {
      again = reopenNativeTarget(first);
      status = await bridgeOf(again).getStatus();
      again.device.close();
      assert.deepEqual([status.currentVersion, status.watchdogArmed], ['3.0.0', true], `restart ${restart}: still on trial`);
    }
    again = reopenNativeTarget(first);
    status = await bridgeOf(again).getStatus();
    again.device.close();
    assert.deepEqual([status.currentVersion, status.previousVersion, status.watchdogArmed, status.watchdogRollbacks], ['2.0.0', '', false, 1], 'rolled back at open');
  } finally {
    first.cleanup();
  }
});
