// Decision 0004, "Acknowledgements", end to end on virtual time: the real agent core and the real
// gateway core over an in-memory link, on one bus. The gateway reads telemetry frames and dies (or
// closes the session for overload) before appending them; with acknowledgements the agent sends
// those samples again on its next session and they reach the bus; without, they are lost, which
// is the gap this closes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../../runtime/session-crypto-node.js';
import { SeededRandom } from '../../core/random/prng.js';
import { deviceKid } from '../../core/protocol/session/gateway-connection.js';
import { MockIoctlDevice } from '../../kernel/mock/mock-kernel.js';
import { IoctlKernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import { createAgentCore, type AgentConnectionHandle, type AgentCore, type AgentCoreOptions, type TelemetrySource } from '../../agent/agent-core.js';
import { MemoryCommandJournal } from '../../agent/command-journal.js';
import { decodeBusEntry } from '../../server/bus-contract/entries.js';
import { streamNames } from '../../server/bus-contract/streams.js';
import type { GatewayCore } from '../../server/gateway/gateway-core.js';
import type { StreamBus } from '../../server/stores/bus/bus-port.js';
import { sessionTasksMax } from '../../server/gateway/device-session.js';
import { embeddedStores, gatewayPublicKey, gatewaySigner, makeCore, makeGatewayPki, onVirtualTime, VirtualDriver, type DeviceMaterial } from '../../server/gateway/test-support.js';

const provider = createNodeEd25519Provider();
const telemetryIntervalMs = 200;

/** Telemetry appends held (read by the gateway, not yet on the bus) while `hold`; a held append never completes once dropped. */
interface Gate { hold: boolean; held: number }

function gatedBus(bus: StreamBus, gate: Gate): StreamBus {
  return new Proxy(bus, {
    get(target, name, receiver) {
      if (name === 'append') {
        return (...args: Parameters<StreamBus['append']>) => {
          if (args[0] === streamNames.telemetry && gate.hold) {
            gate.held += 1;
            return new Promise<string>(() => undefined);
          }
          return target.append(...args);
        };
      }
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** "sampled_at/cpu" of every sample in the bus's telemetry entries for `deviceId` (duplicates kept). */
async function samplesOnBus(bus: StreamBus, deviceId: string): Promise<string[]> {
  const entries = await bus.range(streamNames.telemetry, { count: 10_000 });
  const out: string[] = [];
  for (const entry of entries) {
    const decoded = decodeBusEntry({ ...entry.fields });
    if (decoded.kind !== 'telemetry' || decoded.data.device_id !== deviceId) continue;
    const frame = JSON.parse(decoded.data.frame) as { type: string; body: { sampled_at?: number; metrics?: { cpu_pct: number }; samples?: Array<{ sampled_at: number; metrics: { cpu_pct: number } }> } };
    const samples = frame.type === 'TELEMETRY_BATCH' ? frame.body.samples! : [{ sampled_at: frame.body.sampled_at!, metrics: frame.body.metrics! }];
    for (const s of samples) out.push(`${s.sampled_at}/${s.metrics.cpu_pct}`);
  }
  return out;
}

async function world(telemetryAcks: boolean, deviceId: string, agentOptions: Partial<AgentCoreOptions> = {}) {
  const driver = new VirtualDriver();
  const raw = embeddedStores(driver.time);
  const gate: Gate = { hold: false, held: 0 };
  const stores = { kv: raw.kv, bus: gatedBus(raw.bus, gate) };
  const gatewayOptions = { ...onVirtualTime(driver), heartbeatIntervalMs: 2_000, sessionRecheckIntervalMs: 3_600_000, ackTimeoutMs: 60_000, telemetryAckIntervalMs: 500 };
  const device: DeviceMaterial = await (await makeGatewayPki()).issueDevice(deviceId);
  const random = new SeededRandom(77);
  const agentSeed = random.bytes(32);
  const serviceSeed = random.bytes(32);
  const mock = new MockIoctlDevice({ ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: driver.time });
  const kernel = new IoctlKernelBridge({ device: mock, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
  const taken: string[] = [];
  let cpu = 0;
  const telemetrySource: TelemetrySource = {
    sample: async () => {
      cpu = (cpu + 1) % 100;
      taken.push(`${driver.time.nowMs()}/${cpu}`);
      return { cpu_pct: cpu, mem_pct: 40, disk_pct: 50, net_rx_bytes_per_sec: 1, net_tx_bytes_per_sec: 2 };
    },
  };
  const agent: AgentCore = createAgentCore({
    deviceId, signer: { kid: deviceKid(deviceId), seed: device.seed, provider },
    resolveGatewayKey: (kid) => (kid === gatewaySigner.kid ? gatewayPublicKey : undefined), resolveCommandKey: () => undefined,
    kernel, journal: new MemoryCommandJournal(), clock: driver.time, random, scheduler: driver.time, sessionCrypto: createNodeSessionKeyCrypto(),
    telemetrySource, telemetryIntervalMs, agentVersion: 'e2e/1', ...(telemetryAcks ? { telemetryAcks: true } : {}), ...agentOptions,
  });
  agent.start();

  /** How the gateway closed the agent's connections (the reason is the typed code for an overload). */
  const closes: string[] = [];
  /** Links the agent to `core` in memory; returns a cut that drops the link as a dead process's socket would. */
  function connect(core: GatewayCore): () => void {
    let open = true;
    let agentHandle: AgentConnectionHandle | undefined;
    const handle = core.acceptConnection({
      deviceId, devicePublicKey: device.publicKey, certSerialHex: device.serialHex,
      send: (bytes) => { if (open) queueMicrotask(() => agentHandle?.receive(bytes)); },
      close: (_code, reason) => { closes.push(reason); if (open) { open = false; queueMicrotask(() => agentHandle?.transportClosed()); } },
    });
    agentHandle = agent.onConnected({ send: (bytes) => { if (open) queueMicrotask(() => handle.receive(bytes)); }, close: () => { open = false; handle.transportClosed(); } });
    return () => {
      if (!open) return;
      open = false;
      agentHandle?.transportClosed();
    };
  }
  return { driver, raw, gate, stores, gatewayOptions, agent, taken, connect, closes };
}

describe('telemetry acknowledgements end to end (agent core, gateway core, bus; virtual time)', () => {
  for (const telemetryAcks of [true, false]) {
    it(`${telemetryAcks ? 'with' : 'without'} acks: frames read by a gateway that dies before appending them ${telemetryAcks ? 'reach the bus after the reconnect' : 'are lost'}`, async () => {
      const deviceId = `dev-e2e-ack-${telemetryAcks ? 'on' : 'off'}`;
      const w = await world(telemetryAcks, deviceId);
      const first = makeCore(w.stores, w.gatewayOptions);
      await first.start();
      const cut = w.connect(first);
      await w.driver.advance(3_000);
      assert.equal(w.agent.isReady, true);
      // The bus stops taking this gateway's telemetry: frames are read, their appends never finish.
      w.gate.hold = true;
      const takenBefore = w.taken.length;
      await w.driver.advance(2_000);
      // One append held; the session's later frames wait behind it in its task queue (read, authenticated, not appended).
      assert.equal(w.gate.held, 1);
      const lostWindow = w.taken.slice(takenBefore);
      assert.ok(lostWindow.length >= 5, `${lostWindow.length} samples taken while the bus held`);
      // The gateway process dies: its core stops, the socket is gone, the appends never happen.
      first.abort();
      cut();
      w.gate.hold = false;
      const onBusAtCrash = await samplesOnBus(w.raw.bus, deviceId);
      for (const sample of lostWindow) assert.ok(!onBusAtCrash.includes(sample), `${sample} was not appended before the crash`);
      // A new gateway on the same stores; the agent reconnects.
      const second = makeCore(w.stores, w.gatewayOptions);
      await second.start();
      w.connect(second);
      await w.driver.advance(3_000);
      const onBus = await samplesOnBus(w.raw.bus, deviceId);
      const missing = w.taken.filter((sample) => !onBus.includes(sample));
      if (telemetryAcks) {
        // Every sample taken reached the bus (the last one or two may still wait in a frame in flight).
        assert.ok(missing.every((sample) => !lostWindow.includes(sample)), `lost: ${missing.filter((s) => lostWindow.includes(s)).join(', ')}`);
        assert.ok(missing.length <= 1, `missing ${missing.join(', ')}`);
        assert.equal(w.agent.telemetrySamplesDropped, 0);
      } else {
        assert.ok(lostWindow.length >= 5 && lostWindow.every((sample) => missing.includes(sample)), 'without acks the held frames are gone');
      }
      await w.agent.stop();
      await second.stop();
      await w.raw.bus.close();
      await w.raw.kv.close();
    });
  }

  for (const telemetryAcks of [true, false]) {
    it(`${telemetryAcks ? 'with' : 'without'} acks: frames dropped from a session closed GATEWAY_OVERLOADED (its task queue full) ${telemetryAcks ? 'reach the bus after the reconnect' : 'are lost'}`, async () => {
      const deviceId = `dev-e2e-overload-${telemetryAcks ? 'on' : 'off'}`;
      // Fast samples, and room in the agent for most of a queue's worth of them (below the queue's
      // bound: a resend burst larger than the queue would be closed for overload in its turn).
      const agentBoundMax = 200;
      const w = await world(telemetryAcks, deviceId, { telemetryIntervalMs: 20, telemetryUnackedMax: agentBoundMax, telemetryBufferMax: agentBoundMax });
      const core = makeCore(w.stores, w.gatewayOptions);
      await core.start();
      w.connect(core);
      await w.driver.advance(1_000);
      assert.equal(w.agent.isReady, true);
      // The bus stalls: the session's frames queue behind one held append until its queue is full.
      w.gate.hold = true;
      const takenBefore = w.taken.length;
      await w.driver.until(() => (w.closes.includes('GATEWAY_OVERLOADED') ? true : undefined), 60_000, 'the overload close');
      const lostWindow = w.taken.slice(takenBefore);
      assert.ok(lostWindow.length > sessionTasksMax / 2, `${lostWindow.length} samples taken while the bus stalled`);
      w.gate.hold = false;
      // The agent comes back (its driver reconnects) to the same gateway, whose bus is back.
      w.connect(core);
      await w.driver.advance(1_000);
      const onBus = await samplesOnBus(w.raw.bus, deviceId);
      const lost = lostWindow.filter((sample) => !onBus.includes(sample));
      assert.deepEqual(w.closes, ['GATEWAY_OVERLOADED'], 'one overload close; the reconnect holds');
      if (telemetryAcks) {
        // Only the oldest of the window can be missing: those past the agent's bound, forgotten and counted.
        const dropped = w.agent.telemetrySamplesUnackedDropped + w.agent.telemetrySamplesDropped;
        assert.deepEqual(lost, lostWindow.slice(0, lost.length), 'what is missing is the oldest');
        assert.ok(lost.length <= dropped, `${lost.length} missing, ${dropped} counted as dropped`);
        assert.ok(lostWindow.length - lost.length >= agentBoundMax - 10, `${lostWindow.length - lost.length} of ${lostWindow.length} sent again`);
      } else {
        assert.ok(lost.length > sessionTasksMax / 2, `without acks ${lost.length} are gone`);
        assert.equal(w.agent.telemetrySamplesDropped, 0, 'and nothing counts them');
      }
      await w.agent.stop();
      // Aborted, not stopped: the overloaded session's held append never settles, and a stop waits for its tasks.
      core.abort();
      await w.raw.bus.close();
      await w.raw.kv.close();
    });
  }
});
