// A hostile gateway against the OTA notice's cancel and health nonce (threat model, residual risk
// 15; core/ota/notice-state.ts): the control plane signs both, with the director's key, bound to
// the device and the execution, in order; the agent's update runner (agent/ota/update-runner.ts)
// refuses a notice whose cancel or nonce is unsigned, altered, signed by another key, bound to
// another execution, or older than one it took, with the code logged and reported, and the update
// goes on to success. The honest cancel and health check, by the control plane, still work.
// The runner runs against a real control plane's image repository and rollout coordinator.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signNoticeState } from '../../core/ota/notice-state.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, slotKernel, updateRunnerOn, type Notice, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

describe('OTA notice cancel and health nonce from a hostile gateway', () => {
  let h: OtaHarness;
  let service: RolloutService;
  const provider = createNodeEd25519Provider();
  /** Holds the artifact's download while it is set: notices come in the middle of a step. */
  let gateDownload: Promise<void> | undefined;

  before(async () => {
    ({ h, service } = await openRolloutWorld(['ns-1', 'ns-2', 'ns-3', 'ns-4'], { id: 'ns-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) }));
  });
  after(async () => { await h.close(); await sqlJsTarget.cleanup(); });

  const fetcher = controlPlaneFetcher(() => h, { gate: () => gateDownload });
  const runnerFor = (deviceId: string, calls: string[], sent: Report[], warnings: Array<Record<string, unknown>>) => updateRunnerOn(h, fetcher, sent, {
    deviceId, kernel: slotKernel(calls),
    logger: { debug() {}, info() {}, error() {}, warn(fields) { warnings.push(fields as Record<string, unknown>); } },
  });
  const { noticeOf, deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'ns-rel');
  const codesOf = (warnings: Array<Record<string, unknown>>) => warnings.map((fields) => fields['code']).filter((code) => typeof code === 'string' && code.startsWith('OTA_NOTICE_STATE_'));
  /** A statement with the right shape and key id, signed by a key the device does not trust (what a gateway could make). */
  const forgedKey = { kid: '', seed: new Uint8Array(32).fill(42) };
  const withoutState = (notice: Notice): Notice => {
    const { notice_state: _state, ...rest } = notice;
    return rest;
  };
  const gate = (): (() => void) => {
    let open!: () => void;
    gateDownload = new Promise((resolve) => { open = resolve; });
    return () => { open(); gateDownload = undefined; };
  };

  it('a forged or altered cancel is refused (logged, reported, audited) and the update goes on to success with the control plane\'s nonce', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const { view, notice } = await startFor('ns-1');
    assert.equal(notice.notice_state?.signature.key_id, h.materials.commandSigner.kid, 'the control plane signs the notice state with the director key');
    forgedKey.kid = h.materials.commandSigner.kid;
    const open = gate();
    const runner = runnerFor('ns-1', calls, sent, warnings);
    runner.onNotice(notice);
    await waitFor(() => runner.current?.state === 'downloading');
    const signed = notice.notice_state!;
    runner.onNotice(withoutState({ ...notice, cancel: true }));
    runner.onNotice({ ...notice, cancel: true });
    runner.onNotice({ ...notice, cancel: true, notice_state: { ...signed, signed: { ...signed.signed, cancel: true, seq: 2 } } });
    runner.onNotice({ ...notice, cancel: true, notice_state: signNoticeState({ deviceId: 'ns-1', rolloutId: notice.rollout_id, executionId: notice.execution_id, seq: 2, cancel: true, healthNonce: null }, forgedKey, provider) });
    assert.deepEqual(codesOf(warnings), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING', 'OTA_NOTICE_STATE_SIGNATURE'], 'logged at the 1st, 2nd and 4th refusal');
    assert.equal(runner.noticeCounts.stateRefused, 4);
    open();
    await runner.idle();
    assert.deepEqual(calls, ['stage', 'commit'], 'the update was not stopped');
    assert.equal(runner.current?.state, 'health_checking', 'waits for the control plane\'s nonce');
    const refusedReports = sent.filter((report) => report.event === 'notice_refused');
    assert.deepEqual(refusedReports.map((report) => report.error?.code), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING', 'OTA_NOTICE_STATE_SIGNATURE']);
    assert.ok(!sent.some((report) => report.event === 'canceled'));
    await deliver('ns-1', sent);
    assert.equal(await stateOf(view.id), 'health_checking', 'the refusals moved nothing at the control plane');
    const audited = await h.db.query<{ payload_json: string }>("SELECT payload_json FROM audit_log WHERE kind = 'ota.execution.notice_refused' AND subject = ?", ['device:ns-1']);
    assert.deepEqual(audited.map((row) => (JSON.parse(row.payload_json) as { code: string }).code), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING', 'OTA_NOTICE_STATE_SIGNATURE']);
    // The honest nonce finishes it.
    runner.onNotice(await noticeOf('ns-1'));
    await runner.idle();
    await deliver('ns-1', sent);
    assert.equal(await stateOf(view.id), 'succeeded');
    assert.deepEqual(calls, ['stage', 'commit'], 'no rollback');
  });

  it('a forged or altered health nonce is refused and the health check passes with the control plane\'s', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const { view, notice } = await startFor('ns-2');
    const runner = runnerFor('ns-2', calls, sent, warnings);
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking');
    await deliver('ns-2', sent);
    const honest = await noticeOf('ns-2');
    assert.ok(honest.health_nonce !== undefined && honest.notice_state !== undefined);
    const made = 'g'.repeat(43);
    runner.onNotice(withoutState({ ...honest, health_nonce: made }));
    runner.onNotice({ ...honest, health_nonce: made });
    runner.onNotice({ ...honest, health_nonce: made, notice_state: { ...honest.notice_state, signed: { ...honest.notice_state.signed, health_nonce: made } } });
    await runner.idle();
    assert.equal(runner.noticeCounts.stateRefused, 3);
    assert.equal(runner.current?.state, 'health_checking', 'no version report with a nonce the control plane did not issue');
    assert.ok(!sent.some((report) => report.event === 'version_report'));
    runner.onNotice(honest);
    await runner.idle();
    assert.equal(sent.find((report) => report.event === 'version_report')?.nonce, honest.health_nonce);
    await deliver('ns-2', sent);
    assert.equal(await stateOf(view.id), 'succeeded');
    assert.deepEqual(codesOf(warnings), ['OTA_NOTICE_STATE_UNSIGNED', 'OTA_NOTICE_STATE_BINDING'], 'logged at the 1st and 2nd refusal, not the 3rd');
  });

  it('the signed nonce replayed after the control plane\'s cancel is refused (OTA_NOTICE_STATE_REPLAYED): the device rolls back and sends no version report', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const { view, notice } = await startFor('ns-4');
    const runner = runnerFor('ns-4', calls, sent, warnings);
    runner.onNotice(notice);
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking');
    await deliver('ns-4', sent);
    // The gateway holds back the notice with the nonce; the operator cancels, which after the commit means a rollback.
    const withNonce = await noticeOf('ns-4');
    assert.equal((withNonce.notice_state?.signed as { seq?: number } | undefined)?.seq, 1);
    await service.act(view.id, 'emergency_abort', 'olga');
    const canceled = await noticeOf('ns-4');
    assert.equal((canceled.notice_state?.signed as { seq?: number } | undefined)?.seq, 2);
    runner.onNotice(canceled);
    runner.onNotice(withNonce);
    await runner.idle();
    assert.deepEqual(codesOf(warnings), ['OTA_NOTICE_STATE_REPLAYED']);
    assert.equal(sent.find((report) => report.event === 'notice_refused')?.error?.code, 'OTA_NOTICE_STATE_REPLAYED');
    assert.ok(!sent.some((report) => report.event === 'version_report'), 'the replayed nonce started no health check');
    assert.equal(runner.current?.state, 'rolled_back');
    assert.deepEqual(calls, ['stage', 'commit', 'rollback']);
    await deliver('ns-4', sent);
    assert.equal(await stateOf(view.id), 'rolled_back');
  });

  it('the control plane\'s cancel stops the update; its signed cancel replayed against the device\'s next execution is refused, and that one succeeds', async () => {
    const calls: string[] = [];
    const sent: Report[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const first = await startFor('ns-3');
    const open = gate();
    const runner = runnerFor('ns-3', calls, sent, warnings);
    runner.onNotice(first.notice);
    await waitFor(() => runner.current?.state === 'downloading');
    await service.act(first.view.id, 'emergency_abort', 'olga');
    const canceled = await noticeOf('ns-3');
    assert.equal(canceled.cancel, true);
    runner.onNotice(canceled);
    open();
    await runner.idle();
    assert.equal(runner.current?.state, 'canceled', 'the honest cancel is taken');
    assert.deepEqual(calls, [], 'nothing reached the kernel');
    await deliver('ns-3', sent);
    assert.equal(await stateOf(first.view.id), 'canceled');
    assert.equal(runner.noticeCounts.stateRefused, 0);

    const second = await startFor('ns-3');
    assert.notEqual(second.notice.execution_id, first.notice.execution_id);
    runner.onNotice(second.notice);
    // The artifact is already in the device's targets store: the update runs through to its commit and waits for the nonce.
    await runner.idle();
    assert.equal(runner.current?.state, 'health_checking');
    // After the commit a cancel means a rollback. The old signed cancel on the new execution's notice, or the old canceled notice whole.
    runner.onNotice({ ...second.notice, cancel: true, notice_state: canceled.notice_state! });
    runner.onNotice(canceled);
    await runner.idle();
    assert.deepEqual(codesOf(warnings), ['OTA_NOTICE_STATE_BINDING']);
    assert.equal(runner.current?.executionId, second.notice.execution_id);
    assert.equal(runner.current?.state, 'health_checking', 'the new execution is not rolled back');
    await deliver('ns-3', sent);
    runner.onNotice(await noticeOf('ns-3'));
    await runner.idle();
    await deliver('ns-3', sent);
    assert.equal(await stateOf(second.view.id), 'succeeded');
    assert.deepEqual(calls, ['stage', 'commit']);
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  // Bounded only so a defect fails rather than hangs: 60 s, as a machine busy with other work is slow, never wrong.
  for (let i = 0; i < 6_000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), 'condition not reached');
}
