// Decision 0014: in one process that runs a gateway and a control plane (`sdc serve`, the benches),
// a device-signed frame the gateway verified is not verified again with the curve by the control
// plane: the control plane's own check (decision 0008) is answered by the exact-bytes match of the
// shared verified-signature cache. The commands still reach succeeded with every state, so the
// control plane still accepted each ACK and RESULT. On the embedded stores always, and on Redis +
// MySQL when REDIS_URL and MYSQL_URL are set.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCommand, historyInOrder, pairAgent, startE2e, storeTargets, waitOnline, waitTerminal, type E2eSystem } from './support/e2e-harness.js';

const commands = 3;

for (const target of storeTargets()) {
  describe(`one curve verify per device frame in one process, on ${target.name} stores`, () => {
    let system: E2eSystem;

    before(async () => {
      system = await startE2e({ target });
    });
    after(async () => {
      await system?.stop();
    });

    it('the control plane checks each ACK and RESULT against the gateway\'s verify, without running the curve again', async () => {
      const deviceId = `e2e-v1-${system.tag}`;
      await pairAgent(system, deviceId);
      await waitOnline(system, [deviceId]);
      const before = system.deployment.ed25519Counts();
      for (let i = 0; i < commands; i++) {
        const created = await createCommand(system, deviceId, 'EXEC_PING_KERNEL');
        const record = await waitTerminal(system, created.id);
        // Terminal in the API: the control plane verified the RESULT itself (decision 0008) and recorded it.
        assert.equal(record.state, 'succeeded', JSON.stringify(record));
        assert.deepEqual(historyInOrder(record).states, ['queued', 'sent', 'ack_received', 'executing', 'succeeded']);
      }
      const now = system.deployment.ed25519Counts();
      assert.ok(now.controlPlane !== undefined && before.controlPlane !== undefined);
      const controlPlaneVerifies = now.controlPlane.verifies - before.controlPlane.verifies;
      const controlPlaneHits = now.controlPlane.verifiedCacheHits - before.controlPlane.verifiedCacheHits;
      const gatewayVerifies = now.gateway.verifies - before.gateway.verifies;
      // Each command: at least its ACK and its RESULT, device-signed, checked by both parts.
      assert.ok(controlPlaneHits >= 2 * commands, `control plane cache hits ${controlPlaneHits} for ${commands} commands`);
      assert.equal(controlPlaneVerifies, 0, `control plane curve verifies ${controlPlaneVerifies} (hits ${controlPlaneHits})`);
      // The gateway ran the curve for them.
      assert.ok(gatewayVerifies >= 2 * commands, `gateway curve verifies ${gatewayVerifies}`);
      // Its check of each command's own signature before delivery: the control plane of this process made that
      // signature, so the check is the exact-bytes match, not the curve (decision 0016).
      const gatewayHits = now.gateway.verifiedCacheHits - before.gateway.verifiedCacheHits;
      assert.ok(gatewayHits >= commands, `gateway cache hits ${gatewayHits} for ${commands} commands (curve verifies ${gatewayVerifies})`);
    });
  });
}
