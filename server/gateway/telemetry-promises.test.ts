// Issue 17: what one TELEMETRY frame of a held session costs the gateway in promises when neither
// a presence refresh nor a re-check is due (most samples at telemetry rates): the frame's task
// waits on its append batch's promise, with no async function, Promise.all or await between.
import { createHook } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { streamNames } from '../bus-contract/streams.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { systemRandom } from '../../runtime/system.js';
import type { GatewayCore } from './gateway-core.js';
import { embeddedStores, makeCore, makeGatewayPki, onVirtualTime, StreamReader, TestAgent, VirtualDriver, type TestStores } from './test-support.js';

const metrics = { cpu_pct: 1, mem_pct: 2, disk_pct: 3, net_rx_bytes_per_sec: 0, net_tx_bytes_per_sec: 0 };

describe('gateway promises per TELEMETRY frame with nothing due', () => {
  const driver = new VirtualDriver();
  let stores: TestStores;
  let core: GatewayCore;
  let telemetry: StreamReader;

  before(async () => {
    stores = embeddedStores(driver.time);
    // Refresh (heartbeat / 4) and re-check intervals far beyond the test: no frame has either due.
    core = makeCore(stores, { ...onVirtualTime(driver), heartbeatIntervalMs: 3_600_000, sessionRecheckIntervalMs: 3_600_000 });
    await core.start();
    telemetry = new StreamReader(stores.bus, streamNames.telemetry);
  });
  after(async () => {
    await core.stop();
    await stores.bus.close();
    await stores.kv.close();
  });

  it('forwards every frame, in order, with at most 6 promises each (15.2 before; the test agent and the loop included)', async () => {
    const pki = await makeGatewayPki();
    const device = await pki.issueDevice('dev-promises');
    const agent = new TestAgent(device, { clock: driver.time, sessionMac: { crypto: createNodeSessionKeyCrypto(), random: systemRandom } });
    const handle = core.acceptConnection({
      deviceId: device.deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => agent.onFrame(bytes),
      close: (code, reason) => { agent.closed = { code, reason }; },
    });
    agent.attach((bytes) => handle.receive(bytes));
    await driver.until(() => (agent.ready ? true : undefined), 1_000, 'AUTH_ACK');
    await driver.advance(200);
    const frames = 200;
    // Each frame is handed to the gateway in this loop, as its socket would.
    const samples: number[] = [];
    // Each sample names the previous one's hash, as the agent runtime chains them (the gateway checks it).
    let prevHash: string | undefined;
    let promises = 0;
    const hook = createHook({ init(_id, type) { if (type === 'PROMISE') promises += 1; } }).enable();
    try {
      for (let i = 0; i < frames; i += 1) {
        samples.push(i);
        agent.connection.sendTelemetry({ sampled_at: 1_000 + i, metrics, ...(prevHash === undefined ? {} : { prev_hash: prevHash }) }, driver.time.nowMs());
        const [frame] = agent.connection.takeOutgoing();
        prevHash = createHash('sha256').update(frame!).digest('hex');
        handle.receive(frame!);
      }
      // Let the session tasks and the append batches run (microtasks only: no timer is due).
      for (let turn = 0; turn < 20; turn += 1) await new Promise<void>((resolve) => { setImmediate(resolve); });
    } finally {
      hook.disable();
    }
    assert.equal(agent.closed, undefined);
    await telemetry.poll();
    const forwarded = telemetry.entries.filter((e) => e.kind === 'telemetry' && e.data.device_id === device.deviceId);
    assert.equal(forwarded.length, frames, 'every frame forwarded');
    assert.deepEqual(forwarded.map((e) => (JSON.parse((e.data as { frame: string }).frame) as { body: { sampled_at: number } }).body.sampled_at), samples.map((i) => 1_000 + i), 'in the order sent');
    const perFrame = promises / frames;
    assert.ok(perFrame <= 6, `${perFrame.toFixed(2)} promises per frame`);
  });
});
