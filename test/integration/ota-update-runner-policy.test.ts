/**
 * The agent's update runner and its held policy bundle (docs/ota.md, "Rollouts and the command
 * policy"): the rollout's signed STAGE and COMMIT are checked against the bundle exactly as a
 * delivered command is (PolicyBundleGuard.check, the check AgentCore.checkPolicyBundle makes),
 * when the notice is taken and again just before each kernel call; a refusal ends the execution
 * with POLICY_BUNDLE_DENIED in its report and never reaches the kernel.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { parsePolicy } from '../../core/protocol/policy.js';
import { cutPolicyBundle, signPolicyBundle } from '../../core/protocol/policy-bundle.js';
import { createMemoryPolicyBundleStore, PolicyBundleGuard } from '../../agent/policy-bundle-guard.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { KernelServiceStatus } from '../../kernel/payloads.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, updateRunnerOn, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

const provider = createNodeEd25519Provider();
const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest());

/** Admins may send everything; lab devices take no STAGE (the example rule of docs/policy.md). */
const labPolicy = (denyStage: boolean) => parsePolicy({
  version: 1,
  rules: [
    { id: 'admins', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    ...(denyStage ? [{ id: 'no-updates-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_STAGE_UPDATE'], devices: { tags: ['lab'] } }] : []),
  ],
});

describe('the update runner checks the rollout\'s kernel commands against the held policy bundle', () => {
  let h: OtaHarness;
  let service: RolloutService;
  let gateDownload: Promise<void> | undefined;

  before(async () => {
    ({ h, service } = await openRolloutWorld(['urp-1', 'urp-2'], { id: 'urp-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(40)) }));
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  const fetcher = controlPlaneFetcher(() => h, { gate: () => gateDownload });
  /** A lab device's guard, holding a bundle of `labPolicy(denyStage)` signed with the control plane's command key. */
  const guardFor = async (deviceId: string) => {
    const signer = h.materials.commandSigner;
    const guard = new PolicyBundleGuard({
      deviceId, resolveKey: (kid) => (kid === signer.kid ? signer.publicKey : undefined), provider, sha256, store: createMemoryPolicyBundleStore(),
    });
    let version = 0;
    const hold = async (denyStage: boolean) => {
      version += 1;
      const bundle = cutPolicyBundle({ policy: labPolicy(denyStage), version, device: { id: deviceId, tags: ['lab'] }, issuedAtMs: h.clock.nowMs() });
      const report = await guard.accept(signPolicyBundle({ bundle, kid: signer.kid, seed: signer.seed, provider }), h.clock.nowMs());
      assert.equal(report.status, 'accepted');
    };
    return { guard, hold };
  };
  /** A kernel that only counts the update calls. */
  const countingKernel = (calls: string[]): KernelBridge => ({
    backend: 'mock',
    stageUpdate: async (args: { version: string; sha256: Uint8Array }) => { calls.push('stage'); return { version: args.version, sizeBytes: 0n, sha256: args.sha256 }; },
    commitUpdate: async (version: string) => { calls.push('commit'); return { currentVersion: version, previousVersion: '1.0.0' }; },
    rollbackUpdate: async () => { calls.push('rollback'); return { currentVersion: '1.0.0', previousVersion: '' }; },
    getStatus: async () => ({ currentVersion: '1.0.0', previousVersion: '', stagedVersion: '' }) as KernelServiceStatus,
  }) as unknown as KernelBridge;
  const runnerFor = (deviceId: string, calls: string[], sent: Report[], guard: PolicyBundleGuard) => updateRunnerOn(h, fetcher, sent, {
    deviceId, kernel: countingKernel(calls), checkCommand: (command) => guard.check(command, h.clock.nowMs()),
  });
  const { deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'urp-rel');

  it('a bundle that denies EXEC_STAGE_UPDATE: the notice is refused before any download, stageUpdate is never called', async () => {
    const { guard, hold } = await guardFor('urp-1');
    await hold(true);
    const calls: string[] = [];
    const sent: Report[] = [];
    const { view, notice } = await startFor('urp-1');
    const runner = runnerFor('urp-1', calls, sent, guard);
    runner.onNotice(notice);
    await runner.idle();
    assert.deepEqual(calls, [], 'the kernel is never called');
    assert.equal(runner.current?.state, 'rejected');
    const refusal = sent.find((report) => report.event === 'refuse');
    assert.equal(refusal?.error?.code, 'POLICY_BUNDLE_DENIED');
    assert.match(refusal?.error?.message ?? '', /no-updates-lab/);
    await deliver('urp-1', sent);
    assert.equal(await stateOf(view.id), 'rejected');
  });

  it('a denying bundle taken during the download: STAGE is refused just before the kernel call, the execution fails', async () => {
    const { guard, hold } = await guardFor('urp-2');
    await hold(false);
    const calls: string[] = [];
    const sent: Report[] = [];
    const { view, notice } = await startFor('urp-2');
    let open!: () => void;
    gateDownload = new Promise((resolve) => { open = resolve; });
    const runner = runnerFor('urp-2', calls, sent, guard);
    runner.onNotice(notice);
    for (let i = 0; i < 1_000 && runner.current?.state !== 'downloading'; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(runner.current?.state, 'downloading');
    await hold(true);
    open();
    gateDownload = undefined;
    await runner.idle();
    assert.deepEqual(calls, [], 'STAGE never reaches the kernel');
    assert.equal(runner.current?.state, 'failed');
    assert.equal(sent.find((report) => report.event === 'stage_fail')?.error?.code, 'POLICY_BUNDLE_DENIED');
    await deliver('urp-2', sent);
    assert.equal(await stateOf(view.id), 'failed');
  });
});
