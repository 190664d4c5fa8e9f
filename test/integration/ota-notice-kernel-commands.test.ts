// The kernel commands of an OTA notice, checked by the agent before it journals the execution
// (review h1 (OTA), finding 2, and the way in for finding 1). The update runner verified only the
// director's document; STAGE, COMMIT and ROLLBACK went to the journal as the gateway relayed them.
// A gateway that changed one field of ROLLBACK made the later rollback fail (the kernel refused
// it: rollback_failed, the device left on the update), and one that nested 27 arrays in its
// arguments made the journal unreadable at the next start. Now each command must be signed by a
// pinned command key for this device, with its step's opcode and the execution's arguments, or the
// execution is refused (OTA_KERNEL_COMMAND_INVALID, reported `refuse`) and nothing is journaled.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signCommand } from '../../core/protocol/signed-command.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { fileUpdateJournal, memoryUpdateJournal } from '../../agent/ota/update-journal.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { sqlJsTarget } from '../../server/control-plane/test-support.js';
import type { RolloutService } from '../../server/ota/rollouts.js';
import { controlPlaneFetcher, openRolloutWorld, singleDeviceRollouts, slotKernel, updateRunnerOn, type Notice, type OtaHarness, type Report } from './support/ota-rollout-driver.js';

const provider = createNodeEd25519Provider();
const devices = ['kc-1', 'kc-2', 'kc-3', 'kc-4', 'kc-5', 'kc-6'];

describe('the kernel commands of an OTA notice are verified before the execution is journaled', () => {
  let h: OtaHarness;
  let service: RolloutService;
  const dirs: string[] = [];

  before(async () => {
    ({ h, service } = await openRolloutWorld(devices, { id: 'kc-rel', artifact: new TextEncoder().encode('firmware 2.0.0 '.repeat(50)) }));
  });
  after(async () => {
    await h.close();
    await sqlJsTarget.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const { deliver, startFor, stateOf } = singleDeviceRollouts(() => h, () => service, 'kc-rel');
  const fetcher = controlPlaneFetcher(() => h);

  /** The command signed again by `seed` under `kid` (the control plane's key for a forged but well-signed command). */
  const resigned = (command: SignedCommand, change: Partial<SignedCommand>, kid = h.materials.commandSigner.kid, seed = h.materials.commandSigner.seed): SignedCommand => {
    const { sig: _sig, ...unsigned } = { ...command, ...change };
    return signCommand({ command: unsigned, kid, seed, provider });
  };

  /** Runs a notice changed by `edit` through a fresh runner; the refusal it reported, the kernel's calls and what was journaled. */
  const refusalOf = async (deviceId: string, edit: (notice: Notice) => void) => {
    const { view, notice } = await startFor(deviceId);
    edit(notice);
    const calls: string[] = [];
    const sent: Report[] = [];
    const journal = memoryUpdateJournal();
    const runner = updateRunnerOn(h, fetcher, sent, { deviceId, kernel: slotKernel(calls), journal });
    runner.onNotice(notice);
    await runner.idle();
    const reports = sent.map((report) => `${report.event}:${report.error?.code ?? ''}`);
    const message = sent[0]?.error?.message;
    await deliver(deviceId, sent);
    return { reports, message, calls, saved: journal.saved.length, current: runner.current, refused: runner.noticeCounts.refused, state: await stateOf(view.id) };
  };

  it('a ROLLBACK changed by the gateway (args.x = 1) is refused before anything is journaled or staged', async () => {
    const outcome = await refusalOf('kc-1', (notice) => { (notice.kernel_commands.rollback.args as Record<string, unknown>)['x'] = 1; });
    assert.deepEqual(outcome.reports, ['refuse:OTA_KERNEL_COMMAND_INVALID']);
    assert.match(outcome.message!, /ROLLBACK command does not verify \(CRYPTO_SIGNATURE_INVALID\)/);
    assert.deepEqual(outcome.calls, [], 'no kernel call');
    assert.equal(outcome.saved, 0, 'no journal write');
    assert.equal(outcome.current, null);
    assert.equal(outcome.refused, 1);
    assert.equal(outcome.state, 'rejected', 'the control plane ends the execution with the refusal');
  });

  it('a ROLLBACK signed by a key the device does not pin, or a STAGE in COMMIT\'s place, is refused', async () => {
    const other = new Uint8Array(32).fill(77);
    const unknownKey = await refusalOf('kc-2', (notice) => { notice.kernel_commands.rollback = resigned(notice.kernel_commands.rollback, {}, 'not-pinned', other); });
    assert.deepEqual(unknownKey.reports, ['refuse:OTA_KERNEL_COMMAND_INVALID']);
    assert.match(unknownKey.message!, /ROLLBACK command does not verify \(CRYPTO_UNKNOWN_KID\)/);
    assert.deepEqual([unknownKey.calls, unknownKey.saved, unknownKey.state], [[], 0, 'rejected']);
    const swapped = await refusalOf('kc-3', (notice) => { notice.kernel_commands.commit = notice.kernel_commands.stage; });
    assert.deepEqual(swapped.reports, ['refuse:OTA_KERNEL_COMMAND_INVALID']);
    assert.match(swapped.message!, /COMMIT command is EXEC_STAGE_UPDATE/);
    assert.deepEqual([swapped.calls, swapped.saved, swapped.state], [[], 0, 'rejected']);
  });

  it('well-signed commands naming another length than the director\'s target, or another version in COMMIT, are refused', async () => {
    const length = await refusalOf('kc-4', (notice) => {
      const stage = notice.kernel_commands.stage;
      notice.kernel_commands.stage = resigned(stage, { args: { ...stage.args, size_bytes: Number(stage.args['size_bytes']) + 1 } });
    });
    assert.deepEqual(length.reports, ['refuse:OTA_KERNEL_COMMAND_INVALID']);
    assert.match(length.message!, /STAGE command names another digest or length/);
    assert.deepEqual([length.calls, length.saved, length.state], [[], 0, 'rejected']);
    const version = await refusalOf('kc-5', (notice) => {
      const commit = notice.kernel_commands.commit;
      notice.kernel_commands.commit = resigned(commit, { args: { ...commit.args, version: '9.9.9' } });
    });
    assert.deepEqual(version.reports, ['refuse:OTA_KERNEL_COMMAND_INVALID']);
    assert.match(version.message!, /COMMIT command names another version/);
    assert.deepEqual([version.calls, version.saved, version.state], [[], 0, 'rejected']);
  });

  it('arguments nested 27 arrays deep (accepted as a frame) never reach the journal, which loads at the next start', async () => {
    const { notice } = await startFor('kc-6');
    let deep: unknown = [];
    for (let i = 1; i < 27; i++) deep = [deep];
    (notice.kernel_commands.rollback.args as Record<string, unknown>)['x'] = deep;
    // The agent's frame decoder takes it at its default depth: envelope > body > kernel_commands > rollback > args > 27 arrays.
    parseStrictJson(JSON.stringify({ v: 1, type: 'OTA_NOTICE', body: notice }));
    const dir = mkdtempSync(join(tmpdir(), 'sdc-kc-'));
    dirs.push(dir);
    const calls: string[] = [];
    const sent: Report[] = [];
    const first = updateRunnerOn(h, fetcher, sent, { deviceId: 'kc-6', kernel: slotKernel(calls), journal: fileUpdateJournal(dir) });
    first.onNotice(notice);
    await first.idle();
    assert.deepEqual(sent.map((report) => `${report.event}:${report.error?.code ?? ''}`), ['refuse:OTA_KERNEL_COMMAND_INVALID']);
    assert.deepEqual(calls, []);
    const second = updateRunnerOn(h, fetcher, sent, { deviceId: 'kc-6', kernel: slotKernel(calls), journal: fileUpdateJournal(dir) });
    await second.recover();
    assert.equal(second.current, null);
  });
});
