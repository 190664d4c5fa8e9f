import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import { runKernelContractSuite } from '../kernel-contract-suite.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { SeededRandom } from '../../core/random/prng.js';
import type { KernelFault } from './faults.js';
import { createMockTarget } from './mock-target.js';

const agentSeed = new Uint8Array(32).fill(1);
const serviceSeed = new Uint8Array(32).fill(2);
const clock = { nowMs: () => 1_700_000_000_000 };

runKernelContractSuite('mock', async () => createMockTarget({ agentSeed, serviceSeed, clock }));
runKernelContractSuite('mock with lock screen', async () => createMockTarget({ agentSeed, serviceSeed, clock, lockScreenSupported: true }));

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Moves virtual time by `ms`, letting promise continuations run before and after each timer. */
async function advance(time: VirtualTime, ms: number): Promise<void> {
  await settle();
  await time.runUntil(time.nowMs() + ms, settle);
  await settle();
}

function bridgeWith(faults: KernelFault[], scheduler = new VirtualTime(), seed = 7, timeoutMs?: number) {
  const target = createMockTarget({ agentSeed, serviceSeed, clock, faults, scheduler, random: new SeededRandom(seed) });
  const bridge = new IoctlKernelBridge({
    device: target.device, ed25519: target.ed25519, agentSeed, servicePublicKey: target.servicePublicKey,
    counterStart: 1n, scheduler, timeoutMs,
  });
  return { bridge, scheduler, target };
}

test('status fault: the chosen opcode gets a signed refusal, other opcodes work', async () => {
  const { bridge } = bridgeWith([{ kind: 'status', opcode: 'EXEC_GET_STATUS', status: 'BUSY' }]);
  await assert.rejects(bridge.getStatus(), (e) => SdcError.is(e, 'KERNEL_REFUSED') && e.details.status === 'BUSY' && e.details.authenticated === true);
  assert.equal((await bridge.pingKernel(5n)).nonce, 5n);
});

test('latency fault: the response arrives only when virtual time reaches the delay', async () => {
  const { bridge, scheduler } = bridgeWith([{ kind: 'latency', delayMs: 250 }]);
  let done = false;
  const ping = bridge.pingKernel(1n).then((r) => { done = true; return r; });
  await advance(scheduler, 249);
  assert.equal(done, false);
  await advance(scheduler, 1);
  assert.equal((await ping).nonce, 1n);
  assert.equal(done, true);
});

test('hang fault: the call ends with KERNEL_TIMEOUT at the bridge timeout, and the next call still works', async () => {
  const { bridge, scheduler } = bridgeWith([{ kind: 'hang', opcode: 'EXEC_LOCK_SCREEN' }], new VirtualTime(), 7, 1000);
  const hung = bridge.lockScreen();
  const outcome = assert.rejects(hung, (e) => SdcError.is(e, 'KERNEL_TIMEOUT'));
  await advance(scheduler, 1000);
  await outcome;
  assert.equal((await bridge.pingKernel(3n)).nonce, 3n);
  assert.equal(scheduler.pendingTimers, 0);
});

test('hang fault: closing the bridge ends the call with KERNEL_CLOSED', async () => {
  const { bridge } = bridgeWith([{ kind: 'hang' }]);
  const hung = bridge.getStatus();
  bridge.close();
  await assert.rejects(hung, (e) => SdcError.is(e, 'KERNEL_CLOSED'));
  await assert.rejects(bridge.getStatus(), (e) => SdcError.is(e, 'KERNEL_CLOSED'));
});

test('ratio fault: fires for the fraction the seeded RandomSource draws, the same on every run', async () => {
  const run = async (): Promise<boolean[]> => {
    const { bridge } = bridgeWith([{ kind: 'status', status: 'IO_ERROR', ratio: { numerator: 1, denominator: 4 } }], new VirtualTime(), 99);
    const outcomes: boolean[] = [];
    for (let i = 0; i < 400; i++) outcomes.push(await bridge.pingKernel(BigInt(i)).then(() => true, () => false));
    return outcomes;
  };
  const first = await run();
  assert.deepEqual(await run(), first);
  const failures = first.filter((ok) => !ok).length;
  assert.ok(failures > 60 && failures < 140, `${failures} of 400 failed for a 1/4 ratio`);
});

test('fault options are validated: bad ratios, latency without scheduler', () => {
  assert.throws(() => createMockTarget({ agentSeed, serviceSeed, clock, random: new SeededRandom(1), faults: [{ kind: 'hang', ratio: { numerator: 3, denominator: 2 } }] }), RangeError);
  assert.throws(() => createMockTarget({ agentSeed, serviceSeed, clock, faults: [{ kind: 'latency', delayMs: 5 }] }), RangeError);
});
