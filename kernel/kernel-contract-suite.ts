/**
 * The one contract suite for the kernel boundary: every backend (mock, native, native under
 * sanitizers) gets the same tests through `runKernelContractSuite(name, factory)`. It speaks raw
 * IOCTL buffers (to send malformed ones) and the typed bridge (for the happy paths).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider } from '../core/ports/ports.js';
import { IoctlKernelBridge } from './bridge/kernel-bridge.js';
import { ENVELOPE_BYTES, buildRequest, readHeader, verifyResponse, writeHeader } from './codec.js';
import type { IoctlDevice, IoctlResult } from './device.js';
import {
  HEADER_BYTES, IoctlCode, KernelStatus, Layout, Opcode, WATCHDOG_WINDOW_MS_MAX, WATCHDOG_WINDOW_MS_MIN, kernelStatusNames, type OpcodeName,
} from './generated/contract.js';
import { encodeCommitUpdateRequest, encodeLabel, encodePingRequest, encodeProcessListRequest, encodeStageUpdateRequest } from './payloads.js';
import { encodeCommandAttachment, type CommandAuthorization } from './command/attachment.js';
import { commandAuthorization } from './command/authorization.js';
import { encodeProvisionBody, encodeProvisionRequest, provisionRotationInput } from './command/provision.js';
import { commandSigningInput, signCommand } from '../core/protocol/signed-command.js';
import { signKernelKeyRotation } from '../core/protocol/kernel-key-rotation.js';
import { bytesFromBase64url } from '../core/crypto/bytes.js';
import type { Opcode as ProtocolOpcode } from '../core/protocol/messages/opcodes.js';

export interface KernelTarget {
  device: IoctlDevice;
  ed25519: Ed25519Provider;
  agentSeed: Uint8Array;
  servicePublicKey: Uint8Array;
  /** Makes `bytes` readable by the service under the returned path. */
  putArtifact(name: string, bytes: Uint8Array): string;
  /** Lets `ms` pass on the kernel's own clock: the mock's manual clock moves, the native library is waited for (CLOCK_MONOTONIC). */
  elapse(ms: number): Promise<void>;
  /** True when elapse costs no real time (the suite then also waits out long windows). */
  readonly virtualTime: boolean;
  /** A fresh service instance with the same keys, for tests that need isolated state. */
  cleanup(): void;
}

export type KernelTargetFactory = () => Promise<KernelTarget>;

const definedStatuses = new Set<number>(Object.values(KernelStatus));
const codes = Object.values(IoctlCode) as number[];

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** Every result must be a defined status, fit in outLen, and (when written) verify and agree. */
export function assertWellFormed(target: KernelTarget, result: IoctlResult, outLen: number): void {
  assert.ok(definedStatuses.has(result.status), `undefined status ${result.status}`);
  assert.ok(result.output.length <= outLen, `wrote ${result.output.length} bytes into ${outLen}`);
  if (result.output.length === 0) {
    assert.ok(result.status === KernelStatus.BUFFER_TOO_SMALL || result.status === KernelStatus.BAD_HANDLE, `empty output with ${kernelStatusNames[result.status]}`);
    return;
  }
  const header = readHeader(result.output);
  const verified = verifyResponse({
    ed25519: target.ed25519, servicePublicKey: target.servicePublicKey, response: result.output,
    expectedOpcode: header.opcode, expectedCounter: header.counter,
  });
  assert.equal(verified.header.status, result.status);
}

/** The suite's control plane: its command key and the device the kernels are provisioned as. */
export const suiteControlPlane = Object.freeze({
  seed: new Uint8Array(32).fill(3),
  otherSeed: new Uint8Array(32).fill(4),
  deviceId: 'kernel-suite-01',
});

/** When the suite's commands are issued: the machine's clock at load (a test helper, not the kernel). */
const suiteIssuedAtMs = Date.now();

/** Kernel-side args and opcodes the protocol schema (core/protocol/messages/opcodes.ts) does not describe. */
function kernelOnlyArgs(opcode: string, args: Record<string, unknown>): boolean {
  return opcode === 'EXEC_CONFIRM_UPDATE' || (opcode === 'EXEC_COMMIT_UPDATE' && ('sha256' in args || 'watchdog_ms' in args));
}

export function runKernelContractSuite(name: string, factory: KernelTargetFactory, options: { skip?: string } = {}): void {
  describe(`kernel contract: ${name}`, { skip: options.skip }, () => {
    let counter = 1n;
    let deviceSeq = 1;
    /** A command signed by the suite's control plane (or `seed`), as the agent would pass it down. */
    const authorize = (t: KernelTarget, opcode: ProtocolOpcode, args: Record<string, unknown> = {},
      o: { seq?: number; deviceId?: string; seed?: Uint8Array; issuedAtMs?: number; expiresAtMs?: number } = {}): CommandAuthorization => {
      const command = {
        // Valid for a day from now on the test machine's clock (the native library reads CLOCK_REALTIME; the mocks' clocks are earlier).
        id: `suite-${deviceSeq}`, device_id: o.deviceId ?? suiteControlPlane.deviceId, opcode, args, issued_at: o.issuedAtMs ?? suiteIssuedAtMs,
        expires_at: o.expiresAtMs ?? suiteIssuedAtMs + 86_400_000, device_seq: o.seq ?? deviceSeq++, issuer: 'kernel-suite',
      } as Parameters<typeof signCommand>[0]['command'];
      const seed = o.seed ?? suiteControlPlane.seed;
      if (!kernelOnlyArgs(opcode, args)) return commandAuthorization(signCommand({ command, kid: 'cp-1', seed, provider: t.ed25519 }));
      // Args the control plane's schema does not have yet (the commit digest and window, CONFIRM): the same signed bytes, signed directly.
      const signedBytes = commandSigningInput(command);
      return { signedBytes, signature: t.ed25519.sign(seed, signedBytes) };
    };
    const cpKey = (t: KernelTarget, seed: Uint8Array = suiteControlPlane.seed): Uint8Array => t.ed25519.publicKeyFromSeed(seed);
    /** A bridge on a kernel provisioned with the suite's device id and command key. */
    const provisioned = async (t: KernelTarget, counterStart = 1n): Promise<IoctlKernelBridge> => {
      const bridge = bridgeOf(t, counterStart);
      const result = await bridge.provisionCommandKeys({ deviceId: suiteControlPlane.deviceId, keys: [cpKey(t)] });
      assert.equal(result.outcome, 'provisioned');
      return bridge;
    };
    const refusedWith = (status: string) => (e: unknown): boolean => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === status;
    const withTarget = async (body: (t: KernelTarget) => Promise<void>): Promise<void> => {
      const t = await factory();
      counter = 1_000_000n; // raw requests stay above the counters bridges start from (1n)
      try {
        await body(t);
      } finally {
        t.device.close();
        t.cleanup();
      }
    };
    const request = (t: KernelTarget, opcode: OpcodeName, payload: Uint8Array, c = counter++, attachment?: Uint8Array): Uint8Array =>
      buildRequest({ ed25519: t.ed25519, agentSeed: t.agentSeed, opcode: Opcode[opcode], counter: c, payload, attachment });
    const send = async (t: KernelTarget, code: number, input: Uint8Array, outLen = 4096): Promise<IoctlResult> => {
      const result = await t.device.call(code, input, outLen);
      assertWellFormed(t, result, outLen);
      return result;
    };
    const bridgeOf = (t: KernelTarget, counterStart = 1n): IoctlKernelBridge => new IoctlKernelBridge({
      device: t.device, ed25519: t.ed25519, agentSeed: t.agentSeed, servicePublicKey: t.servicePublicKey, counterStart,
    });

    test('ping echoes the nonce and the contract version', () => withTarget(async (t) => {
      const ping = await bridgeOf(t).pingKernel(0xfedcba9876543210n);
      assert.equal(ping.nonce, 0xfedcba9876543210n);
      assert.equal(ping.contractVersion, 1);
    }));

    test('lock screen is OK exactly when ping reports the capability, else NOT_SUPPORTED', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const { lockScreenSupported } = await bridge.pingKernel();
      if (lockScreenSupported) await bridge.lockScreen(authorize(t, 'EXEC_LOCK_SCREEN'));
      else await assert.rejects(bridge.lockScreen(authorize(t, 'EXEC_LOCK_SCREEN')), (e) => SdcError.is(e, 'KERNEL_NOT_SUPPORTED'));
    }));

    test('process list honours max_entries and the output capacity', () => withTarget(async (t) => {
      const bridge = bridgeOf(t);
      const list = await bridge.getProcessList(3);
      assert.ok(list.entries.length <= 3 && list.entries.length <= list.totalCount, 'entries within max and total');
      for (const entry of list.entries) assert.ok(entry.name.length <= 31, `name '${entry.name}' longer than 31`);
      // Room for exactly one entry although 50 are allowed.
      const outLen = ENVELOPE_BYTES + Layout.ProcessListResponse.bytes + Layout.ProcessEntry.bytes + 47;
      const result = await send(t, IoctlCode.EXEC_GET_PROCESS_LIST, request(t, 'EXEC_GET_PROCESS_LIST', encodeProcessListRequest(50)), outLen);
      assert.equal(result.status, KernelStatus.OK);
      const entryCount = new DataView(result.output.buffer, result.output.byteOffset).getUint32(HEADER_BYTES + 4, true);
      assert.ok(entryCount <= 1, `${entryCount} entries in a one-entry buffer`);
    }));

    test('process list refuses max_entries 0 and over the limit with BAD_PAYLOAD', () => withTarget(async (t) => {
      for (const max of [0, 4097]) {
        const payload = new Uint8Array(8);
        new DataView(payload.buffer).setUint32(0, max, true);
        const result = await send(t, IoctlCode.EXEC_GET_PROCESS_LIST, request(t, 'EXEC_GET_PROCESS_LIST', payload));
        assert.equal(result.status, KernelStatus.BAD_PAYLOAD);
      }
    }));

    test('update: stage, commit, stage, commit, rollback, with metrics in GET_STATUS', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const v1 = new TextEncoder().encode('release one');
      const v2 = new Uint8Array(5000).fill(7);
      const stage = async (file: string, bytes: Uint8Array, version: string) => {
        const args = { version, sha256: Buffer.from(sha256(bytes)).toString('hex'), size_bytes: bytes.length };
        return bridge.stageUpdate({ path: t.putArtifact(file, bytes), version, sha256: sha256(bytes) }, authorize(t, 'EXEC_STAGE_UPDATE', args));
      };
      const commit = (version: string) => bridge.commitUpdate(version, authorize(t, 'EXEC_COMMIT_UPDATE', { version }));
      const rollback = () => bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE'));
      const staged = await stage('v1.bin', v1, '1.0.0');
      assert.deepEqual(staged, { version: '1.0.0', sizeBytes: BigInt(v1.length), sha256: sha256(v1) });
      assert.deepEqual(await commit('1.0.0'), { currentVersion: '1.0.0', previousVersion: '' });
      await stage('v2.bin', v2, '2.0.0');
      await assert.rejects(commit('9.9.9'), refusedWith('BAD_STATE'));
      assert.deepEqual(await commit('2.0.0'), { currentVersion: '2.0.0', previousVersion: '1.0.0' });
      let status = await bridge.getStatus();
      assert.equal(status.currentVersion, '2.0.0');
      assert.equal(status.previousVersion, '1.0.0');
      assert.equal(status.stagedVersion, '');
      assert.equal(status.commits, 2);
      assert.equal(status.currentSizeBytes, 5000n);
      assert.ok(status.lastCommitUnixMs > 0n, 'last commit time recorded');
      assert.deepEqual(await rollback(), { currentVersion: '1.0.0', previousVersion: '' });
      await assert.rejects(rollback(), refusedWith('BAD_STATE'));
      status = await bridge.getStatus();
      assert.equal(status.currentVersion, '1.0.0');
      assert.equal(status.rollbacks, 1);
      assert.equal(status.currentSizeBytes, BigInt(v1.length));
    }));

    test('update refusals: digest mismatch, missing artifact, current version, nothing staged', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const bytes = new Uint8Array([1, 2, 3]);
      const path = t.putArtifact('a.bin', bytes);
      const stage = (p: string, digest: Uint8Array) => bridge.stageUpdate({ path: p, version: 'v1', sha256: digest },
        authorize(t, 'EXEC_STAGE_UPDATE', { version: 'v1', sha256: Buffer.from(digest).toString('hex'), size_bytes: 3 }));
      const commit = () => bridge.commitUpdate('v1', authorize(t, 'EXEC_COMMIT_UPDATE', { version: 'v1' }));
      await assert.rejects(stage(path, new Uint8Array(32)), refusedWith('DIGEST_MISMATCH'));
      await assert.rejects(stage(path + '.missing', sha256(bytes)), refusedWith('IO_ERROR'));
      await assert.rejects(commit(), refusedWith('BAD_STATE'));
      await stage(path, sha256(bytes));
      await commit();
      await assert.rejects(stage(path, sha256(bytes)), refusedWith('BAD_STATE'));
      const status = await bridge.getStatus();
      assert.equal(status.stageFailures, 3);
      assert.equal(status.commits, 1);
    }));

    /** A kernel running `installed` (committed without a watchdog) with `next` staged: the starting point of the watchdog tests. */
    const withUpdateStaged = async (t: KernelTarget, next: Uint8Array = new Uint8Array(4000).fill(2)) => {
      const bridge = await provisioned(t);
      const stage = (version: string, bytes: Uint8Array) => bridge.stageUpdate({ path: t.putArtifact(`${version}.bin`, bytes), version, sha256: sha256(bytes) },
        authorize(t, 'EXEC_STAGE_UPDATE', { version, sha256: Buffer.from(sha256(bytes)).toString('hex'), size_bytes: bytes.length }));
      await stage('1.0.0', new TextEncoder().encode('installed'));
      await bridge.commitUpdate('1.0.0', authorize(t, 'EXEC_COMMIT_UPDATE', { version: '1.0.0' }));
      await stage('2.0.0', next);
      const commit = (o: { sha256?: Uint8Array; watchdogMs?: number; args?: Record<string, unknown>; version?: string } = {}) =>
        bridge.commitUpdate(o.version ?? '2.0.0', authorize(t, 'EXEC_COMMIT_UPDATE', { version: o.version ?? '2.0.0', ...o.args }), { sha256: o.sha256, watchdogMs: o.watchdogMs });
      const confirm = (version = '2.0.0') => bridge.confirmUpdate(version);
      return { bridge, commit, confirm, digest: sha256(next) };
    };

    test('commit digest: the kernel hashes the staged artifact again; another approved digest is DIGEST_MISMATCH and nothing is committed', () => withTarget(async (t) => {
      const { bridge, commit, digest } = await withUpdateStaged(t);
      const other = sha256(new Uint8Array([1]));
      await assert.rejects(commit({ sha256: other }), refusedWith('DIGEST_MISMATCH'));
      let status = await bridge.getStatus();
      assert.deepEqual([status.currentVersion, status.stagedVersion, status.commits, status.commitFailures], ['1.0.0', '2.0.0', 1, 1]);
      // The signed command binds the digest and the window when it names them.
      const hex = Buffer.from(digest).toString('hex');
      await assert.rejects(commit({ sha256: digest, args: { sha256: Buffer.from(other).toString('hex') } }), refusedWith('COMMAND_MISMATCH'));
      await assert.rejects(commit({ sha256: digest, watchdogMs: 60_000, args: { sha256: hex, watchdog_ms: 30_000 } }), refusedWith('COMMAND_MISMATCH'));
      assert.deepEqual(await commit({ sha256: digest, args: { sha256: hex } }), { currentVersion: '2.0.0', previousVersion: '1.0.0' });
      status = await bridge.getStatus();
      assert.deepEqual([status.currentVersion, status.commits, status.commitFailures, status.watchdogArmed], ['2.0.0', 2, 1, false]);
    }));

    test('watchdog: an unconfirmed commit is rolled back on the kernel clock when its window runs out, and counted', () => withTarget(async (t) => {
      const { bridge, commit, confirm, digest } = await withUpdateStaged(t);
      await commit({ sha256: digest, watchdogMs: WATCHDOG_WINDOW_MS_MIN });
      await t.elapse(WATCHDOG_WINDOW_MS_MIN);
      // Checked at the start of the next call: this GET_STATUS already sees the rollback.
      const status = await bridge.getStatus();
      assert.deepEqual([status.currentVersion, status.previousVersion, status.watchdogArmed, status.watchdogRemainingMs], ['1.0.0', '', false, 0n]);
      assert.deepEqual([status.commits, status.rollbacks, status.watchdogRollbacks, status.confirms], [2, 1, 1, 0]);
      assert.equal(status.currentSizeBytes, BigInt('installed'.length));
      await assert.rejects(confirm(), refusedWith('BAD_STATE'), 'too late: nothing to confirm');
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE')), refusedWith('BAD_STATE'), 'and nothing left to roll back to');
    }));

    test('watchdog: CONFIRM of the current version disarms it; a wrong version or a second CONFIRM is BAD_STATE', () => withTarget(async (t) => {
      const { bridge, commit, confirm, digest } = await withUpdateStaged(t);
      await assert.rejects(confirm('1.0.0'), refusedWith('BAD_STATE'), 'nothing armed yet');
      const windowMs = 60_000;
      await commit({ sha256: digest, watchdogMs: windowMs, args: { watchdog_ms: windowMs } });
      let status = await bridge.getStatus();
      assert.equal(status.watchdogArmed, true);
      assert.ok(status.watchdogRemainingMs > 0n && status.watchdogRemainingMs <= BigInt(windowMs), `remaining ${status.watchdogRemainingMs}`);
      await assert.rejects(confirm('1.0.0'), refusedWith('BAD_STATE'), 'another version than the current one');
      assert.deepEqual(await confirm(), { currentVersion: '2.0.0', previousVersion: '1.0.0' });
      await assert.rejects(confirm(), refusedWith('BAD_STATE'), 'already confirmed');
      // Past the window nothing happens any more (waited out only where time is virtual: a minute of real time is too long for a test).
      if (t.virtualTime) await t.elapse(windowMs * 2);
      status = await bridge.getStatus();
      assert.deepEqual([status.currentVersion, status.previousVersion, status.watchdogArmed, status.watchdogRemainingMs], ['2.0.0', '1.0.0', false, 0n]);
      assert.deepEqual([status.commits, status.rollbacks, status.watchdogRollbacks, status.confirms], [2, 0, 0, 1]);
      // A signed CONFIRM is checked like any command: the version must match.
      await assert.rejects(bridge.confirmUpdate('2.0.0', authorize(t, 'EXEC_CONFIRM_UPDATE' as ProtocolOpcode, { version: '9.9.9' })), refusedWith('COMMAND_MISMATCH'));
    }));

    test('watchdog: a manual ROLLBACK disarms it; no commit over an unconfirmed one; a window without a version to fall back to arms nothing', () => withTarget(async (t) => {
      const { bridge, commit, confirm } = await withUpdateStaged(t);
      await commit({ watchdogMs: 60_000 });
      // Staging the next release is fine; committing it before 2.0.0 is confirmed is not.
      const next = new Uint8Array([3, 3, 3]);
      await bridge.stageUpdate({ path: t.putArtifact('3.bin', next), version: '3.0.0', sha256: sha256(next) },
        authorize(t, 'EXEC_STAGE_UPDATE', { version: '3.0.0', sha256: Buffer.from(sha256(next)).toString('hex'), size_bytes: 3 }));
      await assert.rejects(commit({ version: '3.0.0' }), refusedWith('BAD_STATE'));
      assert.deepEqual(await bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE')), { currentVersion: '1.0.0', previousVersion: '' });
      let status = await bridge.getStatus();
      assert.deepEqual([status.watchdogArmed, status.rollbacks, status.watchdogRollbacks, status.commitFailures], [false, 1, 0, 1]);
      await assert.rejects(confirm(), refusedWith('BAD_STATE'));
      // A fresh kernel has no current version: a watchdog would have nothing to roll back to, so the
      // window (signed by a control plane that does not know what the device runs) is ignored.
      const fresh = await factory();
      try {
        const b = await provisioned(fresh);
        const bytes = new Uint8Array([4]);
        await b.stageUpdate({ path: fresh.putArtifact('f.bin', bytes), version: 'f1', sha256: sha256(bytes) },
          authorize(fresh, 'EXEC_STAGE_UPDATE', { version: 'f1', sha256: Buffer.from(sha256(bytes)).toString('hex'), size_bytes: 1 }));
        const first = await b.commitUpdate('f1', authorize(fresh, 'EXEC_COMMIT_UPDATE', { version: 'f1', watchdog_ms: 60_000 }), { watchdogMs: 60_000 });
        assert.deepEqual(first, { currentVersion: 'f1', previousVersion: '' });
        const after = await b.getStatus();
        assert.deepEqual([after.watchdogArmed, after.watchdogRemainingMs, after.commits], [false, 0n, 1]);
      } finally {
        fresh.device.close();
        fresh.cleanup();
      }
      status = await bridge.getStatus();
      assert.equal(status.currentVersion, '1.0.0');
    }));

    test('commit and confirm payloads: wrong lengths, a window out of range and reserved bytes are refused, never run', () => withTarget(async (t) => {
      await withUpdateStaged(t);
      const C = Layout.CommitUpdateRequest;
      const good = encodeCommitUpdateRequest('2.0.0');
      const withWindow = (ms: number) => { const p = good.slice(); new DataView(p.buffer).setUint32(C.watchdogMs.offset, ms, true); return p; };
      const reserved = good.slice();
      reserved[C.reserved.offset] = 1;
      const cases: Array<[string, OpcodeName, Uint8Array, number]> = [
        ['commit: the old 32-byte form', 'EXEC_COMMIT_UPDATE', encodeLabel('2.0.0'), KernelStatus.BAD_LENGTH],
        ['commit: one byte short', 'EXEC_COMMIT_UPDATE', good.subarray(0, C.bytes - 1), KernelStatus.BAD_LENGTH],
        ['commit: one byte long', 'EXEC_COMMIT_UPDATE', Uint8Array.from([...good, 0]), KernelStatus.BAD_LENGTH],
        ['commit: window below the minimum', 'EXEC_COMMIT_UPDATE', withWindow(WATCHDOG_WINDOW_MS_MIN - 1), KernelStatus.BAD_PAYLOAD],
        ['commit: window above the maximum', 'EXEC_COMMIT_UPDATE', withWindow(WATCHDOG_WINDOW_MS_MAX + 1), KernelStatus.BAD_PAYLOAD],
        ['commit: reserved set', 'EXEC_COMMIT_UPDATE', reserved, KernelStatus.BAD_PAYLOAD],
        ['confirm: empty', 'EXEC_CONFIRM_UPDATE', new Uint8Array(0), KernelStatus.BAD_LENGTH],
        ['confirm: 31 bytes', 'EXEC_CONFIRM_UPDATE', encodeLabel('2.0.0').subarray(0, 31), KernelStatus.BAD_LENGTH],
        ['confirm: bad label', 'EXEC_CONFIRM_UPDATE', new Uint8Array(32).fill(0x2f), KernelStatus.BAD_PAYLOAD],
      ];
      for (const [label, name, payload, expected] of cases) {
        const result = await send(t, IoctlCode[name], request(t, name, payload));
        assert.equal(kernelStatusNames[result.status], kernelStatusNames[expected], label);
      }
      // A CONFIRM answer needs room for the slots.
      const small = await send(t, IoctlCode.EXEC_CONFIRM_UPDATE, request(t, 'EXEC_CONFIRM_UPDATE', encodeLabel('2.0.0')), 100);
      assert.equal(small.status, KernelStatus.BUFFER_TOO_SMALL);
      const status = await bridgeOf(t, counter++).getStatus();
      assert.deepEqual([status.currentVersion, status.stagedVersion, status.commits, status.commitFailures], ['1.0.0', '2.0.0', 1, 0]);
    }));

    test('stage refuses unsafe labels, NUL in the path and a path_len that disagrees with payload_len', () => withTarget(async (t) => {
      const good = encodeStageUpdateRequest({ path: '/tmp/x', version: 'v1', sha256: new Uint8Array(32) });
      const dotdot = good.slice();
      dotdot.set([0x2e, 0x2e, 0], Layout.StageUpdateRequest.version.offset);
      assert.equal((await send(t, IoctlCode.EXEC_STAGE_UPDATE, request(t, 'EXEC_STAGE_UPDATE', dotdot))).status, KernelStatus.BAD_PAYLOAD);
      const slash = good.slice();
      slash[Layout.StageUpdateRequest.version.offset] = 0x2f;
      assert.equal((await send(t, IoctlCode.EXEC_STAGE_UPDATE, request(t, 'EXEC_STAGE_UPDATE', slash))).status, KernelStatus.BAD_PAYLOAD);
      const nul = good.slice();
      nul[nul.length - 1] = 0;
      assert.equal((await send(t, IoctlCode.EXEC_STAGE_UPDATE, request(t, 'EXEC_STAGE_UPDATE', nul))).status, KernelStatus.BAD_PAYLOAD);
      const long = good.slice();
      new DataView(long.buffer).setUint16(Layout.StageUpdateRequest.pathLen.offset, 7, true);
      assert.equal((await send(t, IoctlCode.EXEC_STAGE_UPDATE, request(t, 'EXEC_STAGE_UPDATE', long))).status, KernelStatus.BAD_LENGTH);
    }));

    test('a replayed or non-increasing counter is refused with REPLAY', () => withTarget(async (t) => {
      const first = request(t, 'EXEC_PING_KERNEL', encodePingRequest(1n), 10n);
      assert.equal((await send(t, IoctlCode.EXEC_PING_KERNEL, first)).status, KernelStatus.OK);
      assert.equal((await send(t, IoctlCode.EXEC_PING_KERNEL, first)).status, KernelStatus.REPLAY);
      const lower = request(t, 'EXEC_PING_KERNEL', encodePingRequest(1n), 9n);
      assert.equal((await send(t, IoctlCode.EXEC_PING_KERNEL, lower)).status, KernelStatus.REPLAY);
      const higher = request(t, 'EXEC_PING_KERNEL', encodePingRequest(1n), 11n);
      assert.equal((await send(t, IoctlCode.EXEC_PING_KERNEL, higher)).status, KernelStatus.OK);
    }));

    test('a request signed by another key, or with a flipped signature bit, is refused with BAD_SIGNATURE', () => withTarget(async (t) => {
      const forged = buildRequest({ ed25519: t.ed25519, agentSeed: new Uint8Array(32).fill(9), opcode: Opcode.EXEC_GET_STATUS, counter: 5n, payload: new Uint8Array(0) });
      assert.equal((await send(t, IoctlCode.EXEC_GET_STATUS, forged)).status, KernelStatus.BAD_SIGNATURE);
      const flipped = request(t, 'EXEC_GET_STATUS', new Uint8Array(0), 6n);
      flipped[flipped.length - 1]! ^= 0x01;
      assert.equal((await send(t, IoctlCode.EXEC_GET_STATUS, flipped)).status, KernelStatus.BAD_SIGNATURE);
      // A refused signature does not consume the counter.
      assert.equal((await send(t, IoctlCode.EXEC_GET_STATUS, request(t, 'EXEC_GET_STATUS', new Uint8Array(0), 6n))).status, KernelStatus.OK);
    }));

    test('structural refusals, each with its defined status', () => withTarget(async (t) => {
      const valid = (): Uint8Array => request(t, 'EXEC_GET_STATUS', new Uint8Array(0), 100n);
      const patched = (patch: (h: ReturnType<typeof readHeader>) => void): Uint8Array => {
        const bytes = valid();
        const header = readHeader(bytes);
        patch(header);
        writeHeader(bytes, header);
        return bytes;
      };
      const cases: Array<[string, number, Uint8Array, number]> = [
        ['unknown code', 0x222000, valid(), KernelStatus.UNKNOWN_CODE],
        ['short input', IoctlCode.EXEC_GET_STATUS, valid().subarray(0, 95), KernelStatus.BAD_LENGTH],
        ['bad magic', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.magic = 0x52434453; }), KernelStatus.BAD_MAGIC],
        ['bad version', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.version = 2; }), KernelStatus.BAD_VERSION],
        ['payload_len mismatch', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.payloadLen = 4; }), KernelStatus.BAD_LENGTH],
        ['payload_len over the limit', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.payloadLen = 0xffffffff; }), KernelStatus.BAD_LENGTH],
        ['flags set', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.flags = 1; }), KernelStatus.BAD_HEADER],
        ['status set', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.status = 3; }), KernelStatus.BAD_HEADER],
        ['command_len over payload_len', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.commandLen = 1; }), KernelStatus.BAD_LENGTH],
        ['opcode differs from code', IoctlCode.EXEC_PING_KERNEL, valid(), KernelStatus.BAD_HEADER],
        ['wrong payload size for opcode', IoctlCode.EXEC_PING_KERNEL, request(t, 'EXEC_PING_KERNEL', new Uint8Array(7), 101n), KernelStatus.BAD_LENGTH],
      ];
      for (const [label, code, input, expected] of cases) {
        const result = await send(t, code, input);
        assert.equal(kernelStatusNames[result.status], kernelStatusNames[expected], label);
      }
    }));

    test('output too small: nothing below 96 bytes, the needed length from 100 bytes', () => withTarget(async (t) => {
      const tiny = await t.device.call(IoctlCode.EXEC_GET_STATUS, request(t, 'EXEC_GET_STATUS', new Uint8Array(0)), 95);
      assert.equal(tiny.status, KernelStatus.BUFFER_TOO_SMALL);
      assert.equal(tiny.output.length, 0);
      const bare = await send(t, IoctlCode.EXEC_GET_STATUS, request(t, 'EXEC_GET_STATUS', new Uint8Array(0)), 99);
      assert.equal(bare.status, KernelStatus.BUFFER_TOO_SMALL);
      assert.equal(bare.output.length, ENVELOPE_BYTES);
      const hinted = await send(t, IoctlCode.EXEC_GET_STATUS, request(t, 'EXEC_GET_STATUS', new Uint8Array(0)), 120);
      assert.equal(hinted.status, KernelStatus.BUFFER_TOO_SMALL);
      const needed = new DataView(hinted.output.buffer, hinted.output.byteOffset).getUint32(HEADER_BYTES, true);
      assert.equal(needed, ENVELOPE_BYTES + Layout.StatusResponse.bytes);
    }));

    test('GET_STATUS counts accepted and refused requests', () => withTarget(async (t) => {
      const bridge = bridgeOf(t, 50n);
      await send(t, IoctlCode.EXEC_GET_STATUS, new Uint8Array(10));
      await bridge.pingKernel();
      const status = await bridge.getStatus();
      assert.equal(status.lastCounter, 51n);
      assert.equal(status.requestsAccepted, 2n);
      assert.equal(status.requestsRefused, 1n);
    }));

    test('property: random buffers, codes and capacities never crash and always get a defined status', () => withTarget(async (t) => {
      await fc.assert(fc.asyncProperty(
        fc.oneof(fc.constantFrom(...codes), fc.integer({ min: 0, max: 0xffffffff })),
        fc.uint8Array({ maxLength: 400 }),
        fc.integer({ min: 0, max: 700 }),
        async (code, input, outLen) => {
          const result = await t.device.call(code, input, outLen);
          assertWellFormed(t, result, outLen);
          assert.notEqual(result.status, KernelStatus.OK);
        },
      ), { numRuns: 300, endOnFailure: true });
    }));

    test('property: any single-byte change to a signed request is refused, and the original still works', () => withTarget(async (t) => {
      await provisioned(t);
      await fc.assert(fc.asyncProperty(
        fc.constantFrom<OpcodeName>('EXEC_PING_KERNEL', 'EXEC_GET_STATUS', 'EXEC_COMMIT_UPDATE'),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (name, position, xor) => {
          const payload = name === 'EXEC_PING_KERNEL' ? encodePingRequest(7n) : name === 'EXEC_COMMIT_UPDATE' ? encodeCommitUpdateRequest('v1') : new Uint8Array(0);
          // COMMIT carries its signed command: a change anywhere in it breaks the agent signature too.
          const attachment = name === 'EXEC_COMMIT_UPDATE' ? encodeCommandAttachment(authorize(t, 'EXEC_COMMIT_UPDATE', { version: 'v1' })) : undefined;
          const original = request(t, name, payload, counter++, attachment);
          const mutated = original.slice();
          mutated[position % mutated.length]! ^= xor;
          const refused = await send(t, IoctlCode[name], mutated);
          assert.notEqual(refused.status, KernelStatus.OK);
          const accepted = await send(t, IoctlCode[name], original);
          // COMMIT with nothing staged is BAD_STATE: authenticated and executed, just not allowed.
          assert.ok(accepted.status === KernelStatus.OK || (name === 'EXEC_COMMIT_UPDATE' && accepted.status === KernelStatus.BAD_STATE), `original ${name} got ${kernelStatusNames[accepted.status]}`);
        },
      ), { numRuns: 200, endOnFailure: true });
    }));

    test('property: replaying any earlier request is refused with REPLAY', () => withTarget(async (t) => {
      const sent: Uint8Array[] = [];
      await fc.assert(fc.asyncProperty(fc.boolean(), fc.nat(), async (replay, pick) => {
        if (replay && sent.length > 0) {
          const old = sent[pick % sent.length]!;
          assert.equal((await send(t, IoctlCode.EXEC_PING_KERNEL, old)).status, KernelStatus.REPLAY);
        } else {
          const fresh = request(t, 'EXEC_PING_KERNEL', encodePingRequest(BigInt(pick)));
          assert.equal((await send(t, IoctlCode.EXEC_PING_KERNEL, fresh)).status, KernelStatus.OK);
          if (sent.length < 64) sent.push(fresh);
        }
      }), { numRuns: 200, endOnFailure: true });
    }));

    test('unprovisioned: privileged opcodes are refused NOT_PROVISIONED, read-only ones run', () => withTarget(async (t) => {
      const bridge = bridgeOf(t);
      await assert.rejects(bridge.rollbackUpdate(), refusedWith('NOT_PROVISIONED'));
      await assert.rejects(bridge.lockScreen(authorize(t, 'EXEC_LOCK_SCREEN')), refusedWith('NOT_PROVISIONED'));
      await assert.rejects(bridge.getStatus(authorize(t, 'EXEC_GET_STATUS')), refusedWith('NOT_PROVISIONED'));
      assert.equal((await bridge.getStatus()).rollbacks, 0);
    }));

    test('provisioning: first set, identical again, no other device id, no new key without a rotation signature', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const set = { deviceId: suiteControlPlane.deviceId, keys: [cpKey(t)] };
      assert.deepEqual(await bridge.provisionCommandKeys(set), { outcome: 'unchanged', keyCount: 1 });
      await assert.rejects(bridge.provisionCommandKeys({ ...set, deviceId: 'another-device' }), refusedWith('PROVISION_DENIED'));
      const attacker = { ...set, keys: [cpKey(t, t.agentSeed)] };
      await assert.rejects(bridge.provisionCommandKeys(attacker), refusedWith('PROVISION_DENIED'));
      // Signed by the key it replaces' stand-in (the agent key) is still no rotation.
      const selfSigned = t.ed25519.sign(t.agentSeed, provisionRotationInput(encodeProvisionBody(attacker)));
      await assert.rejects(bridge.provisionCommandKeys(attacker, selfSigned), refusedWith('PROVISION_DENIED'));
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seed: t.agentSeed })), refusedWith('COMMAND_FORGED'));
      // A rotation signed by the provisioned key: the new key authorizes, the old one no longer does.
      const rotated = { ...set, keys: [cpKey(t, suiteControlPlane.otherSeed)] };
      const signature = t.ed25519.sign(suiteControlPlane.seed, provisionRotationInput(encodeProvisionBody(rotated)));
      assert.deepEqual(await bridge.provisionCommandKeys(rotated, signature), { outcome: 'rotated', keyCount: 1 });
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE')), refusedWith('COMMAND_FORGED'));
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seed: suiteControlPlane.otherSeed })), refusedWith('BAD_STATE'));
      const raw = encodeProvisionRequest(set);
      raw[Layout.ProvisionRequest.keys.offset + 40] = 1; // a byte beyond key_count keys
      assert.equal((await send(t, IoctlCode.PROVISION_COMMAND_KEYS, request(t, 'PROVISION_COMMAND_KEYS', raw))).status, KernelStatus.BAD_PAYLOAD);
      const withCommand = request(t, 'PROVISION_COMMAND_KEYS', encodeProvisionRequest(set), counter++, encodeCommandAttachment(authorize(t, 'EXEC_PING_KERNEL')));
      assert.equal((await send(t, IoctlCode.PROVISION_COMMAND_KEYS, withCommand)).status, KernelStatus.COMMAND_INVALID);
    }));

    test('provisioning: the rotation the control plane signs (signKernelKeyRotation) moves the kernel to [new, previous]; both keys then authorize', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const keys = [cpKey(t, suiteControlPlane.otherSeed), cpKey(t)];
      const set = { deviceId: suiteControlPlane.deviceId, keys };
      // What the control plane puts in its enrollment answer: one signature per key it holds.
      const byNew = signKernelKeyRotation({ set, kid: 'cp-new', seed: suiteControlPlane.otherSeed, provider: t.ed25519 });
      const byPrevious = signKernelKeyRotation({ set, kid: 'cp-old', seed: suiteControlPlane.seed, provider: t.ed25519 });
      const decode = (signature: string) => bytesFromBase64url(signature, { code: 'CRYPTO_BAD_SIGNATURE_ENCODING', name: 'signature', length: 64 });
      await assert.rejects(bridge.provisionCommandKeys(set, decode(byNew.signature)), refusedWith('PROVISION_DENIED'), 'the new key is not held yet');
      await assert.rejects(bridge.provisionCommandKeys({ ...set, keys: [keys[0]!] }, decode(byPrevious.signature)), refusedWith('PROVISION_DENIED'), 'the signature covers the set');
      assert.deepEqual(await bridge.provisionCommandKeys(set, decode(byPrevious.signature)), { outcome: 'rotated', keyCount: 2 });
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seed: suiteControlPlane.otherSeed })), refusedWith('BAD_STATE'));
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE')), refusedWith('BAD_STATE'));
      assert.deepEqual(await bridge.provisionCommandKeys(set), { outcome: 'unchanged', keyCount: 2 });
    }));

    test('a compromised agent (agent key, no control-plane signature) cannot run a privileged opcode', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const v1 = new Uint8Array([9, 9, 9]);
      const path = t.putArtifact('evil.bin', v1);
      await assert.rejects(bridge.lockScreen(), refusedWith('COMMAND_MISSING'));
      await assert.rejects(bridge.stageUpdate({ path, version: 'evil', sha256: sha256(v1) }), refusedWith('COMMAND_MISSING'));
      await assert.rejects(bridge.commitUpdate('evil'), refusedWith('COMMAND_MISSING'));
      await assert.rejects(bridge.rollbackUpdate(), refusedWith('COMMAND_MISSING'));
      // It can sign a command with its own key, but that key is not a provisioned command key.
      const own = authorize(t, 'EXEC_STAGE_UPDATE', { version: 'evil', sha256: Buffer.from(sha256(v1)).toString('hex'), size_bytes: 3 }, { seed: t.agentSeed });
      await assert.rejects(bridge.stageUpdate({ path, version: 'evil', sha256: sha256(v1) }, own), refusedWith('COMMAND_FORGED'));
      // Nor can it edit a genuine command: the bytes are covered by the control-plane signature.
      const genuine = authorize(t, 'EXEC_COMMIT_UPDATE', { version: 'good' });
      const edited = { ...genuine, signedBytes: Buffer.from(Buffer.from(genuine.signedBytes).toString('latin1').replace('"good"', '"evil"'), 'latin1') };
      await assert.rejects(bridge.commitUpdate('evil', edited), refusedWith('COMMAND_FORGED'));
      const status = await bridge.getStatus();
      assert.deepEqual([status.stagedVersion, status.currentVersion, status.commits, status.rollbacks], ['', '', 0, 0]);
    }));

    test('an expired signed command is refused COMMAND_EXPIRED on the kernel\'s own clock, takes no seq, and leaves the state alone', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      // Expired decades ago on every clock the suite runs under (mock: 2023; native: now).
      const expired = authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 500, issuedAtMs: 1_000_000, expiresAtMs: 1_060_000 });
      await assert.rejects(bridge.rollbackUpdate(expired), refusedWith('COMMAND_EXPIRED'));
      await assert.rejects(bridge.rollbackUpdate(expired), refusedWith('COMMAND_EXPIRED'), 'still expired, not a replay: the seq was not taken');
      // The same seq, signed with a live expiry, still runs (reaches the operation: nothing staged, BAD_STATE).
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 500 })), refusedWith('BAD_STATE'));
      // Forged beats expired: an unprovisioned key's expired command is COMMAND_FORGED (the order of checks).
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 501, seed: suiteControlPlane.otherSeed, issuedAtMs: 1_000_000, expiresAtMs: 1_060_000 })), refusedWith('COMMAND_FORGED'));
    }));

    test('signed commands for another device, another operation or already run are refused with their codes', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const bytes = new Uint8Array([5, 6, 7]);
      const digest = Buffer.from(sha256(bytes)).toString('hex');
      const path = t.putArtifact('ok.bin', bytes);
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { deviceId: 'someone-else' })), refusedWith('COMMAND_WRONG_DEVICE'));
      await assert.rejects(bridge.lockScreen(authorize(t, 'EXEC_ROLLBACK_UPDATE')), refusedWith('COMMAND_MISMATCH'));
      await assert.rejects(bridge.commitUpdate('v1', authorize(t, 'EXEC_COMMIT_UPDATE', { version: 'v2' })), refusedWith('COMMAND_MISMATCH'));
      await assert.rejects(bridge.stageUpdate({ path, version: 'v1', sha256: sha256(bytes) },
        authorize(t, 'EXEC_STAGE_UPDATE', { version: 'v1', sha256: '0'.repeat(64), size_bytes: 3 })), refusedWith('COMMAND_MISMATCH'));
      await assert.rejects(bridge.getProcessList(5, authorize(t, 'EXEC_GET_PROCESS_LIST', { limit: 4 })), refusedWith('COMMAND_MISMATCH'));
      assert.ok((await bridge.getProcessList(4, authorize(t, 'EXEC_GET_PROCESS_LIST', { limit: 4 }))).entries.length <= 4);
      // Replay: the same signed command again, in a new agent request with a fresh counter.
      const stage = authorize(t, 'EXEC_STAGE_UPDATE', { version: 'v1', sha256: digest, size_bytes: 3, url: 'https://x/y?a=1&b="q"' }, { seq: 1000 });
      await bridge.stageUpdate({ path, version: 'v1', sha256: sha256(bytes) }, stage);
      await assert.rejects(bridge.stageUpdate({ path, version: 'v1', sha256: sha256(bytes) }, stage), refusedWith('COMMAND_REPLAY'));
      // A lower seq that has not run still runs (late redelivery), once; one a whole window below does not.
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 999 })), refusedWith('BAD_STATE'));
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 999 })), refusedWith('COMMAND_REPLAY'));
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 1000 - 256 })), refusedWith('COMMAND_REPLAY'));
      await assert.rejects(bridge.rollbackUpdate(authorize(t, 'EXEC_ROLLBACK_UPDATE', {}, { seq: 1000 - 255 })), refusedWith('BAD_STATE'));
      // Malformed: signed_len disagreeing with command_len; control-plane-signed bytes that are not a command.
      const junk = new TextEncoder().encode('sdc-command-v1\n{"args":{},"device_id":"kernel-suite-01"}');
      // Every field but expires_at: a command without an expiry is malformed, not timeless.
      const noExpiry = new TextEncoder().encode('sdc-command-v1\n{"args":{},"device_id":"kernel-suite-01","device_seq":2000,"opcode":"EXEC_ROLLBACK_UPDATE"}');
      await assert.rejects(bridge.rollbackUpdate({ signedBytes: noExpiry, signature: t.ed25519.sign(suiteControlPlane.seed, noExpiry) }), refusedWith('COMMAND_INVALID'));
      const junkAuth = { signedBytes: junk, signature: t.ed25519.sign(suiteControlPlane.seed, junk) };
      await assert.rejects(bridge.rollbackUpdate(junkAuth), refusedWith('COMMAND_INVALID'));
      assert.equal((await bridge.getStatus()).stagedVersion, 'v1');
      // Raw requests last: their counters (from 1,000,000) are above the bridge's.
      const bad = encodeCommandAttachment(authorize(t, 'EXEC_ROLLBACK_UPDATE'));
      new DataView(bad.buffer).setUint32(Layout.CommandAttachment.signedLen.offset, 1, true);
      assert.equal((await send(t, IoctlCode.EXEC_ROLLBACK_UPDATE, request(t, 'EXEC_ROLLBACK_UPDATE', new Uint8Array(0), counter++, bad))).status, KernelStatus.COMMAND_INVALID);
    }));

    test('property: a signed command runs at most once, in any order within the replay window', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const seen = new Set<number>();
      let highest = 0;
      await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 700 }), async (seq) => {
        const fresh = !seen.has(seq) && highest - seq < 256;
        const outcome = await bridge.getStatus(authorize(t, 'EXEC_GET_STATUS', {}, { seq })).then(() => 'OK', (e: SdcError) => String(e.details.status));
        assert.equal(outcome, fresh ? 'OK' : 'COMMAND_REPLAY', `seq ${seq} after highest ${highest}`);
        if (fresh) { seen.add(seq); highest = Math.max(highest, seq); }
      }), { numRuns: 300, endOnFailure: true });
    }));

    test('property: control-plane-signed arbitrary bytes reach the command scanner and get a defined refusal', () => withTarget(async (t) => {
      const bridge = await provisioned(t);
      const prefix = new TextEncoder().encode('sdc-command-v1\n{');
      await fc.assert(fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 300 }), async (prefixed, body) => {
        const signedBytes = prefixed ? Uint8Array.from([...prefix, ...body]) : body;
        const auth = { signedBytes, signature: t.ed25519.sign(suiteControlPlane.seed, signedBytes) };
        await assert.rejects(bridge.rollbackUpdate(auth), (e) => SdcError.is(e, 'KERNEL_REFUSED') && e.details.authenticated === true);
      }), { numRuns: 200, endOnFailure: true });
    }));
  });
}
