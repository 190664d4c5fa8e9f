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
import { HEADER_BYTES, IoctlCode, KernelStatus, Layout, Opcode, kernelStatusNames, type OpcodeName } from './generated/contract.js';
import { encodeLabel, encodePingRequest, encodeProcessListRequest, encodeStageUpdateRequest } from './payloads.js';

export interface KernelTarget {
  device: IoctlDevice;
  ed25519: Ed25519Provider;
  agentSeed: Uint8Array;
  servicePublicKey: Uint8Array;
  /** Makes `bytes` readable by the service under the returned path. */
  putArtifact(name: string, bytes: Uint8Array): string;
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

export function runKernelContractSuite(name: string, factory: KernelTargetFactory, options: { skip?: string } = {}): void {
  describe(`kernel contract: ${name}`, { skip: options.skip }, () => {
    let counter = 1n;
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
    const request = (t: KernelTarget, opcode: OpcodeName, payload: Uint8Array, c = counter++): Uint8Array =>
      buildRequest({ ed25519: t.ed25519, agentSeed: t.agentSeed, opcode: Opcode[opcode], counter: c, payload });
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
      const bridge = bridgeOf(t);
      const { lockScreenSupported } = await bridge.pingKernel();
      if (lockScreenSupported) await bridge.lockScreen();
      else await assert.rejects(bridge.lockScreen(), (e) => SdcError.is(e, 'KERNEL_NOT_SUPPORTED'));
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
      const bridge = bridgeOf(t);
      const v1 = new TextEncoder().encode('release one');
      const v2 = new Uint8Array(5000).fill(7);
      const staged = await bridge.stageUpdate({ path: t.putArtifact('v1.bin', v1), version: '1.0.0', sha256: sha256(v1) });
      assert.deepEqual(staged, { version: '1.0.0', sizeBytes: BigInt(v1.length), sha256: sha256(v1) });
      assert.deepEqual(await bridge.commitUpdate('1.0.0'), { currentVersion: '1.0.0', previousVersion: '' });
      await bridge.stageUpdate({ path: t.putArtifact('v2.bin', v2), version: '2.0.0', sha256: sha256(v2) });
      await assert.rejects(bridge.commitUpdate('9.9.9'), (e) => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === 'BAD_STATE');
      assert.deepEqual(await bridge.commitUpdate('2.0.0'), { currentVersion: '2.0.0', previousVersion: '1.0.0' });
      let status = await bridge.getStatus();
      assert.equal(status.currentVersion, '2.0.0');
      assert.equal(status.previousVersion, '1.0.0');
      assert.equal(status.stagedVersion, '');
      assert.equal(status.commits, 2);
      assert.equal(status.currentSizeBytes, 5000n);
      assert.ok(status.lastCommitUnixMs > 0n, 'last commit time recorded');
      assert.deepEqual(await bridge.rollbackUpdate(), { currentVersion: '1.0.0', previousVersion: '' });
      await assert.rejects(bridge.rollbackUpdate(), (e) => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === 'BAD_STATE');
      status = await bridge.getStatus();
      assert.equal(status.currentVersion, '1.0.0');
      assert.equal(status.rollbacks, 1);
      assert.equal(status.currentSizeBytes, BigInt(v1.length));
    }));

    test('update refusals: digest mismatch, missing artifact, current version, nothing staged', () => withTarget(async (t) => {
      const bridge = bridgeOf(t);
      const bytes = new Uint8Array([1, 2, 3]);
      const path = t.putArtifact('a.bin', bytes);
      const refusedWith = (status: string) => (e: unknown): boolean => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === status;
      await assert.rejects(bridge.stageUpdate({ path, version: 'v1', sha256: new Uint8Array(32) }), refusedWith('DIGEST_MISMATCH'));
      await assert.rejects(bridge.stageUpdate({ path: path + '.missing', version: 'v1', sha256: sha256(bytes) }), refusedWith('IO_ERROR'));
      await assert.rejects(bridge.commitUpdate('v1'), refusedWith('BAD_STATE'));
      await bridge.stageUpdate({ path, version: 'v1', sha256: sha256(bytes) });
      await bridge.commitUpdate('v1');
      await assert.rejects(bridge.stageUpdate({ path, version: 'v1', sha256: sha256(bytes) }), refusedWith('BAD_STATE'));
      const status = await bridge.getStatus();
      assert.equal(status.stageFailures, 3);
      assert.equal(status.commits, 1);
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
        ['reserved set', IoctlCode.EXEC_GET_STATUS, patched((h) => { h.reserved = 1; }), KernelStatus.BAD_HEADER],
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
      await fc.assert(fc.asyncProperty(
        fc.constantFrom<OpcodeName>('EXEC_PING_KERNEL', 'EXEC_GET_STATUS', 'EXEC_COMMIT_UPDATE'),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (name, position, xor) => {
          const payload = name === 'EXEC_PING_KERNEL' ? encodePingRequest(7n) : name === 'EXEC_COMMIT_UPDATE' ? encodeLabel('v1') : new Uint8Array(0);
          const original = request(t, name, payload);
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
  });
}
