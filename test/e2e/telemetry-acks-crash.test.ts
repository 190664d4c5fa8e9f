// Decision 0004, "Acknowledgements", on the real deployment (TLS, WebSocket, control plane, both
// store pairs): an agent with telemetry acknowledgements keeps sampling through a gateway crash
// and restart. The frames the dead gateway read and never appended, and those in flight on the
// dead socket, are sent again after the reconnect: the stored samples have no hole around the
// crash, and the agent dropped none.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runAgent } from '../../agent/agent-runtime.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { agentDir, eventually, startE2e, storeTargets, waitOnline, type E2eSystem } from './support/e2e-harness.js';

/**
 * 250 ms: fast enough for a hole to show, slow enough that what the agent holds at the crash (sent
 * and unacknowledged, about a heartbeat's worth, plus what it samples while away) stays within its
 * 64-sample buffer, so that none is dropped by the bound (at 100 ms one run dropped one).
 */
const telemetryIntervalMs = 250;
/** Larger than any gap a busy machine makes between two samples of a healthy agent (a slow source skips a tick). */
const gapMsMax = 1_500;

for (const target of storeTargets()) {
  describe(`telemetry acknowledgements through a gateway crash on ${target.name} stores`, () => {
    let system: E2eSystem;
    before(async () => {
      system = await startE2e({ target });
    });
    after(async () => {
      await system?.stop();
    });

    it('stores every sample taken around the crash: no hole, none dropped', async () => {
      const deviceId = `e2e-acks-${system.tag}`;
      const { token: pairingToken } = await system.api<{ token: string }>('POST', `/v1/devices/${deviceId}/pairing-tokens`, {});
      const dir = agentDir(system, deviceId);
      await mkdir(join(dir, 'updates'), { recursive: true, mode: 0o700 });
      const agent = await runAgent({
        dir, serverUrl: system.apiUrl, deviceId, pairingToken, caPem: system.materials.rootCaPem, kernel: 'mock',
        telemetryIntervalMs, clock: systemClock, random: systemRandom, scheduler: systemScheduler, telemetryAcks: true,
      });
      system.agents.set(deviceId, agent);
      await waitOnline(system, [deviceId]);
      const stored = async (): Promise<number[]> => {
        const answer = await system.api<{ items: Array<{ ts_ms: number }> }>('GET', `/v1/devices/${deviceId}/telemetry?limit=500`);
        return [...new Set(answer.items.map((item) => item.ts_ms))].sort((a, b) => a - b);
      };
      await eventually('samples stored before the crash', async () => ((await stored()).length >= 8 ? true : undefined));
      const crashAtMs = systemClock.nowMs();
      await system.crashAndRestartGateway(800);
      const afterMs = crashAtMs + 3_000;
      // Back online, and samples stored from well after the crash.
      await eventually('samples stored after the reconnect', async () => {
        const times = await stored();
        return times.length > 0 && times[times.length - 1]! > afterMs ? true : undefined;
      });
      // The resend and the acks settle: nothing left unacknowledged from before.
      await eventually('acknowledgements caught up', () => (agent.core.telemetrySamplesUnacked < 20 ? true : undefined));
      const times = await stored();
      const around = times.filter((t) => t >= crashAtMs - 2_000 && t <= afterMs);
      assert.ok(around.length > 8, `${around.length} samples around the crash`);
      const gaps = around.slice(1).map((t, i) => t - around[i]!);
      const hole = gaps.findIndex((gap) => gap > gapMsMax);
      assert.equal(hole, -1, `a hole of ${gaps[hole]} ms at ${around[hole]} (crash at ${crashAtMs})`);
      assert.equal(agent.core.telemetrySamplesDropped, 0, 'none dropped by the buffer bound');
      assert.equal(agent.core.telemetrySamplesUnackedDropped, 0, 'none forgotten unacknowledged');
    });
  });
}
