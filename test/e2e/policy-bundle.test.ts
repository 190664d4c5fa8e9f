// The device's signed policy bundle (issue 12, roadmap 10.2) through the real system: a real
// control plane signs it, a real gateway pushes it over loopback TLS, a real agent (runAgent)
// verifies it, keeps it in its directory and enforces it, also with the control plane stopped
// and after a restart of the agent with the store's copy gone. On the embedded stores always,
// and on Redis + MySQL when REDIS_URL and MYSQL_URL are set.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import type { SignedCommand } from '../../core/protocol/messages/command.js';
import { cutPolicyBundle, signPolicyBundle, type SignedPolicyBundle } from '../../core/protocol/policy-bundle.js';
import { defaultPolicy, parsePolicy } from '../../core/protocol/policy.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { policyBundleFileName } from '../../agent/policy-bundle-file.js';
import { decodeBusEntry, encodeBusEntry } from '../../server/bus-contract/entries.js';
import { policyBundleChannels, policyBundleKeys } from '../../server/bus-contract/policy-bundle-keys.js';
import { gatewayCommandStream, streamMaxLen, streamNames } from '../../server/bus-contract/streams.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import {
  agentDir, countProcessListCalls, eventually, pairAgent, restartAgent, startE2e, storeTargets, waitOnline, type E2eSystem,
} from './support/e2e-harness.js';

const provider = createNodeEd25519Provider();

async function heldBundle(system: E2eSystem, deviceId: string): Promise<SignedPolicyBundle | undefined> {
  try {
    return JSON.parse(await readFile(join(agentDir(system, deviceId), policyBundleFileName), 'utf8')) as SignedPolicyBundle;
  } catch {
    return undefined;
  }
}

/** A command signed with the control plane's key and put straight on the gateway's stream: what is in flight when the control plane goes down. */
async function injectCommand(system: E2eSystem, deviceId: string, deviceSeq: number): Promise<SignedCommand> {
  const signer = system.materials.commandSigner;
  const nowMs = systemClock.nowMs();
  const command = signCommand({
    command: {
      id: `bundle-${system.tag}-${deviceSeq}`, device_id: deviceId, opcode: 'EXEC_GET_PROCESS_LIST', args: { limit: 5 },
      issued_at: nowMs, expires_at: nowMs + 120_000, device_seq: deviceSeq, issuer: signer.kid,
    },
    kid: signer.kid, seed: signer.seed, provider,
  });
  await system.deployment.stores.bus.append(gatewayCommandStream('gw-1'), encodeBusEntry('deliver', { command }), { maxLen: streamMaxLen.gatewayCommands });
  return command;
}

/** The device's signed COMMAND_RESULT for a command, read from the events stream with an observer group of our own. */
async function resultOf(system: E2eSystem, group: string, commandId: string): Promise<{ status: string; error?: { code: string } }> {
  const { bus } = system.deployment.stores;
  await bus.ensureGroup(streamNames.events, group, '0');
  return eventually(`result of ${commandId}`, async () => {
    for (const entry of await bus.readGroup(streamNames.events, group, 'observer', { count: 500 })) {
      const decoded = decodeBusEntry(entry.fields);
      if (decoded.kind === 'command_result' && decoded.data.command_id === commandId) {
        return (JSON.parse(decoded.data.frame) as { body: { status: string; error?: { code: string } } }).body;
      }
    }
    return undefined;
  });
}

for (const target of storeTargets()) {
  describe(`policy bundle end to end on ${target.name} stores`, () => {
    let system: E2eSystem;
    let deviceId: string;

    before(async () => {
      system = await startE2e({ target });
      deviceId = `e2e-pb-${system.tag}`;
    });
    after(async () => {
      await system?.stop();
    });

    it('the agent receives, verifies and keeps the bundle of the policy in force, and a new revision reaches it', async () => {
      await pairAgent(system, deviceId);
      await waitOnline(system, [deviceId]);
      const first = await eventually('first bundle on disk', async () => heldBundle(system, deviceId));
      const revisionBefore = first.bundle.version;
      assert.equal(first.bundle.device_id, deviceId);
      // A new revision: nobody may list processes on this device.
      const controlPlane = system.deployment.controlPlane!;
      const stored = await controlPlane.policy.set({
        document: {
          version: 1, revision: revisionBefore,
          rules: [...defaultPolicy.rules, { id: 'no-process-list-here', effect: 'deny', roles: '*', opcodes: ['EXEC_GET_PROCESS_LIST'], devices: { ids: [deviceId] } }],
        },
        expectedRevision: revisionBefore, actor: 'user:e2e',
      });
      const next = await eventually('the new revision on disk', async () => {
        const held = await heldBundle(system, deviceId);
        return held !== undefined && held.bundle.version === stored.revision ? held : undefined;
      });
      assert.ok((next.bundle.policy as { rules: Array<{ id: string }> }).rules.some((rule) => rule.id === 'no-process-list-here'));
      // The agent keeps the bundle on disk first and reports it after; the gateway records the held
      // version when that report arrives, so the key follows the file a moment later (longer under load).
      await eventually('the held version recorded', async () => {
        const held = await system.deployment.stores.kv.get(policyBundleKeys.held(deviceId));
        return held === String(stored.revision) ? held : undefined;
      });
    });

    it('a forged bundle is refused by the agent and reported: the control plane raises (and audits) a policy_bundle_refused alert', async () => {
      const held = (await heldBundle(system, deviceId))!;
      const forged = signPolicyBundle({
        bundle: cutPolicyBundle({ policy: parsePolicy({ version: 1, revision: 999, rules: [] }), version: 999, device: { id: deviceId }, issuedAtMs: systemClock.nowMs() }),
        kid: system.materials.commandSigner.kid, seed: systemRandom.bytes(32), provider,
      });
      const { kv } = system.deployment.stores;
      await kv.set(policyBundleKeys.bundle(deviceId), canonicalize(forged));
      await kv.publish(policyBundleChannels.ready, deviceId);
      const alert = await eventually('policy_bundle_refused alert', async () => {
        const page = await system.api<{ items: Array<{ kind: string; message: string }> }>('GET', `/v1/alerts?device_id=${deviceId}`);
        return page.items.find((item) => item.kind === 'policy_bundle_refused');
      });
      assert.match(alert.message, /POLICY_BUNDLE_SIGNATURE_INVALID/);
      assert.equal((await heldBundle(system, deviceId))!.bundle.version, held.bundle.version);
      // Put the genuine one back, as the control plane would at the next request.
      await kv.set(policyBundleKeys.bundle(deviceId), canonicalize(held));
    });

    it('with the control plane down, the agent keeps refusing what its bundle denies, also after a restart with the store\'s copy gone', async () => {
      let processListCalls = countProcessListCalls(system.agents.get(deviceId)!);
      await system.deployment.controlPlane!.stop();
      const first = await injectCommand(system, deviceId, 900_001);
      const refused = await resultOf(system, `observer-${system.tag}`, first.id);
      assert.equal(refused.status, 'rejected');
      assert.equal(refused.error?.code, 'POLICY_BUNDLE_DENIED');
      assert.equal(processListCalls.size, 0, 'the kernel was never asked');

      // The agent restarts; the key/value store lost the bundle; nobody can sign a new one.
      await system.agents.get(deviceId)!.stop();
      await system.deployment.stores.kv.del(policyBundleKeys.bundle(deviceId));
      const restarted = await restartAgent(system, deviceId);
      processListCalls = countProcessListCalls(restarted);
      await eventually('agent session after restart', async () => (restarted.core.isReady ? true : undefined));
      const second = await injectCommand(system, deviceId, 900_002);
      const refusedAgain = await resultOf(system, `observer-${system.tag}`, second.id);
      assert.equal(refusedAgain.error?.code, 'POLICY_BUNDLE_DENIED');
      assert.equal(processListCalls.size, 0, 'the kernel was never asked');
    });
  });
}
