import { describe, it } from 'node:test';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import { SdcError } from '../core/errors/index.js';
import type { Opcode } from '../core/protocol/messages/opcodes.js';
import { decodeEnvelope } from '../core/protocol/envelope.js';
import { GatewayConnection, deviceKid, gatewayKid, type GatewayEvent } from '../core/protocol/session/gateway-connection.js';
import { signCommand } from '../core/protocol/signed-command.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import { SeededRandom } from '../core/random/prng.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import { StallingScheduler } from '../core/time/stalling-scheduler.js';
import type { Scheduler } from '../core/ports/ports.js';
import { createAgentCore, type AgentConnectionHandle, type AgentCore, type AgentCoreEvent } from './agent-core.js';
import { MemoryCommandJournal, type CommandJournal } from './command-journal.js';
import { FileCommandJournal } from './command-journal-file.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoctlKernelBridge, type KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { KernelStatus } from '../kernel/generated/contract.js';
import { fakeNativeBindings } from '../kernel/native/fake-bindings.js';
import { NativeIoctlDevice } from '../kernel/native/native-device.js';
import { createSyntheticMetricsSource } from './telemetry/synthetic-metrics.js';

const provider = createNodeEd25519Provider();
const sessionCrypto = createNodeSessionKeyCrypto();
const deviceId = 'dev-1';
const heartbeatIntervalMs = 10_000;
const telemetryIntervalMs = 5_000;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Keys { device: Uint8Array; gateway: Uint8Array; commands: Uint8Array }

/** A kernel bridge over the mock kernel that counts calls; `hang` makes pings never complete. */
function countingKernel(time: VirtualTime, random: SeededRandom, options: { hang?: boolean } = {}): { kernel: KernelBridge; calls: () => number } {
  const agentSeed = random.bytes(32);
  const serviceSeed = random.bytes(32);
  const device = new MockIoctlDevice({ ed25519: provider, serviceSeed, agentPublicKey: provider.publicKeyFromSeed(agentSeed), clock: time });
  const bridge = new IoctlKernelBridge({ device, ed25519: provider, agentSeed, servicePublicKey: provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
  let calls = 0;
  const kernel: KernelBridge = {
    backend: bridge.backend,
    pingKernel: (nonce) => {
      calls += 1;
      return options.hang ? new Promise(() => {}) : bridge.pingKernel(nonce);
    },
    lockScreen: () => { calls += 1; return bridge.lockScreen(); },
    getProcessList: (n) => { calls += 1; return bridge.getProcessList(n); },
    stageUpdate: (a) => { calls += 1; return bridge.stageUpdate(a); },
    commitUpdate: (v) => { calls += 1; return bridge.commitUpdate(v); },
    rollbackUpdate: () => { calls += 1; return bridge.rollbackUpdate(); },
    getStatus: () => { calls += 1; return bridge.getStatus(); },
    close: () => bridge.close(),
  };
  return { kernel, calls: () => calls };
}

class Harness {
  readonly time = new VirtualTime(1_800_000_000_000);
  readonly random = new SeededRandom(7);
  readonly keys: Keys = { device: this.random.bytes(32), gateway: this.random.bytes(32), commands: this.random.bytes(32) };
  readonly events: AgentCoreEvent[] = [];
  journal: CommandJournal = new MemoryCommandJournal();
  kernel = countingKernel(this.time, this.random);
  core!: AgentCore;
  gateway!: GatewayConnection;
  handle!: AgentConnectionHandle;
  /** Frames the gateway received and what it made of them, in order. */
  received: Array<{ bytes: Uint8Array; events: GatewayEvent[] }> = [];
  transportClosed = false;
  /** The agent's clock reads virtual time plus this (the gateway's reads virtual time). */
  agentSkewMs = 0;
  /** The agent's timers; a test may put a StallingScheduler over `time` before createCore. */
  scheduler: Scheduler = this.time;
  #sessions = 0;
  #seq = 0;

  createCore(kernel: KernelBridge = this.kernel.kernel): AgentCore {
    this.core = createAgentCore({
      deviceId, signer: { kid: deviceKid(deviceId), seed: this.keys.device, provider },
      resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(this.keys.gateway) : undefined),
      resolveCommandKey: (kid) => (kid === 'cp:test' ? provider.publicKeyFromSeed(this.keys.commands) : undefined),
      kernel, journal: this.journal, clock: { nowMs: () => this.time.nowMs() + this.agentSkewMs }, random: this.random, scheduler: this.scheduler,
      telemetrySource: createSyntheticMetricsSource({ random: this.random }), telemetryIntervalMs, agentVersion: 'test/1', sessionCrypto,
      onEvent: (event) => this.events.push(event),
    });
    this.core.start();
    return this.core;
  }

  /** An in-memory link: frames go straight to the peer, in order. */
  connect(): void {
    this.#sessions += 1;
    this.received = [];
    this.transportClosed = false;
    const gateway = new GatewayConnection({
      deviceId, signer: { kid: gatewayKid('gw-1'), seed: this.keys.gateway, provider }, gatewayId: 'gw-1', sessionId: `session-${this.#sessions}`,
      devicePublicKey: provider.publicKeyFromSeed(this.keys.device), random: this.random, heartbeatIntervalMs, authTimeoutMs: 5_000, sessionToken: 'token',
      sessionMac: { crypto: sessionCrypto, random: this.random },
    });
    this.gateway = gateway;
    this.handle = this.core.onConnected({
      send: (bytes) => {
        if (this.gateway !== gateway) return;
        this.received.push({ bytes, events: gateway.receive(bytes, this.time.nowMs()) });
        this.pump();
      },
      close: () => { this.transportClosed = true; },
    });
    gateway.start(this.time.nowMs());
    this.pump();
  }

  pump(): void {
    if (!this.gateway) return;
    for (const frame of this.gateway.takeOutgoing()) this.handle.receive(frame);
  }

  disconnect(): void {
    this.gateway.transportLost(this.time.nowMs());
    this.handle.transportClosed();
  }

  command(opcode: Opcode = 'EXEC_PING_KERNEL', overrides: Partial<SignedCommand> = {}, seed = this.keys.commands): SignedCommand {
    this.#seq += 1;
    const issuedAt = this.time.nowMs();
    const unsigned = {
      id: `cmd-${this.#seq}`, device_id: deviceId, opcode, args: {}, issued_at: issuedAt, expires_at: issuedAt + 60_000,
      device_seq: this.#seq, issuer: 'operator:alice', ...overrides,
    };
    return signCommand({ command: unsigned, kid: 'cp:test', seed, provider });
  }

  async deliver(command: SignedCommand, attempt = 1): Promise<void> {
    this.gateway.deliverCommand(command, attempt, this.time.nowMs());
    this.pump();
    await this.core.idle();
  }

  async advance(ms: number): Promise<void> {
    await this.time.runUntil(this.time.nowMs() + ms, async () => { await settle(); this.pump(); });
    await settle();
    await this.core.idle();
  }

  messages<T extends 'HEARTBEAT' | 'TELEMETRY' | 'COMMAND_ACK' | 'COMMAND_RESULT'>(type: T): Array<{ bytes: Uint8Array; body: MessageBody<T> }> {
    const out: Array<{ bytes: Uint8Array; body: MessageBody<T> }> = [];
    for (const { bytes, events } of this.received) {
      for (const event of events) {
        if (event.kind === 'message' && event.message.type === type) out.push({ bytes, body: event.message.body as MessageBody<T> });
      }
    }
    return out;
  }
}

async function readyHarness(): Promise<Harness> {
  const h = new Harness();
  h.createCore();
  await h.core.idle();
  h.connect();
  return h;
}

describe('agent core', () => {
  it('carries a delivery\'s traceparent to the kernel call and back in its ACKs and RESULT; a redelivery answered from the journal keeps it', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const h = new Harness();
    const base = h.kernel.kernel;
    const kernelTraces: Array<string | undefined> = [];
    h.createCore({ ...base, pingKernel: (nonce, auth) => { kernelTraces.push(auth?.traceparent); return base.pingKernel(nonce, auth); } });
    await h.core.idle();
    h.connect();
    const command = h.command();
    // Sent only because the agent announced trace_context in its AUTH (gateway-connection.ts).
    h.gateway.deliverCommand(command, 1, h.time.nowMs(), traceparent);
    h.pump();
    await h.core.idle();
    assert.deepEqual(kernelTraces, [traceparent]);
    assert.deepEqual(h.messages('COMMAND_ACK').map((m) => [m.body.stage, m.body.traceparent]), [['received', traceparent], ['executing', traceparent]]);
    assert.deepEqual(h.messages('COMMAND_RESULT').map((m) => [m.body.status, m.body.traceparent]), [['succeeded', traceparent]]);
    // The redelivery is answered from the journal: the same signed result, trace included, and no second kernel call.
    h.gateway.deliverCommand(command, 2, h.time.nowMs(), traceparent);
    h.pump();
    await h.core.idle();
    assert.deepEqual(h.messages('COMMAND_RESULT').map((m) => m.body.traceparent), [traceparent, traceparent]);
    assert.equal(kernelTraces.length, 1);
  });

  it('a delivery without a traceparent is answered without one', async () => {
    const h = await readyHarness();
    await h.deliver(h.command());
    assert.ok(h.messages('COMMAND_ACK').every((m) => !('traceparent' in m.body)));
    assert.equal('traceparent' in h.messages('COMMAND_RESULT')[0]!.body, false);
  });

  it('authenticates with the device key and reports the journal high-water mark', async () => {
    const h = await readyHarness();
    const auth = h.received.flatMap((r) => r.events).find((e) => e.kind === 'authenticated');
    assert.deepEqual(auth, { kind: 'authenticated', deviceId, sessionId: 'session-1', lastCommandSeq: 0, agentVersion: 'test/1', clockOffsetMs: 0, sessionMac: true });
    assert.equal(h.core.isReady, true);
    assert.equal(h.gateway.state, 'ready');
  });

  it('sends a heartbeat every heartbeat_interval_ms and the gateway keeps the session', async () => {
    const h = await readyHarness();
    await h.advance(heartbeatIntervalMs - 1);
    assert.equal(h.messages('HEARTBEAT').length, 0);
    await h.advance(1);
    assert.equal(h.messages('HEARTBEAT').length, 1);
    await h.advance(3 * heartbeatIntervalMs);
    const beats = h.messages('HEARTBEAT').map((m) => m.body.uptime_ms);
    assert.equal(beats.length, 4);
    assert.ok(beats.every((u, i) => i === 0 || u > beats[i - 1]!), 'uptime strictly increases');
    assert.deepEqual(h.gateway.handleTimeout(h.time.nowMs()), []);
    assert.equal(h.gateway.state, 'ready');
  });

  it('sends telemetry every telemetryIntervalMs, each prev_hash the sha256 of the previous TELEMETRY frame', async () => {
    const h = await readyHarness();
    await h.advance(4 * telemetryIntervalMs);
    const samples = h.messages('TELEMETRY');
    assert.ok(samples.length >= 3, `got ${samples.length} samples`);
    assert.equal(samples[0]!.body.prev_hash, undefined);
    for (let i = 1; i < samples.length; i++) {
      assert.equal(samples[i]!.body.prev_hash, createHash('sha256').update(samples[i - 1]!.bytes).digest('hex'));
    }
  });

  it('buffers telemetry while disconnected (bounded) and sends it after AUTH_ACK', async () => {
    const h = await readyHarness();
    h.disconnect();
    await h.advance(3 * telemetryIntervalMs);
    h.connect();
    await h.core.idle();
    assert.ok(h.messages('TELEMETRY').length >= 2);
  });

  it('executes a command delivered twice exactly once and answers the second from the journal', async () => {
    const h = await readyHarness();
    const command = h.command();
    await h.deliver(command, 1);
    await h.deliver(command, 2);
    assert.equal(h.kernel.calls(), 1);
    const acks = h.messages('COMMAND_ACK').map((m) => m.body.stage);
    assert.deepEqual(acks, ['received', 'executing']);
    const results = h.messages('COMMAND_RESULT').map((m) => m.body);
    assert.equal(results.length, 2);
    assert.equal(results[0]!.status, 'succeeded');
    assert.deepEqual(results[1], results[0]);
    assert.equal(h.journal.get(command.id)?.stage, 'finished');
  });

  it('a duplicate of a command still executing is never executed again: answered from the journal (where it is while it runs, its result after), also after the result was confirmed', async () => {
    const h = new Harness();
    let release: () => void = () => undefined;
    const gated: KernelBridge = {
      ...h.kernel.kernel,
      pingKernel: async (nonce) => {
        await new Promise<void>((resolve) => { release = resolve; });
        return h.kernel.kernel.pingKernel(nonce);
      },
    };
    h.createCore(gated);
    await h.core.idle();
    h.connect();
    const command = h.command();
    const deliverNoWait = (attempt: number) => {
      h.gateway.deliverCommand(command, attempt, h.time.nowMs());
      h.pump();
    };
    deliverNoWait(1);
    await settle();
    assert.equal(h.journal.get(command.id)?.stage, 'executing');
    deliverNoWait(2);
    deliverNoWait(3);
    for (let i = 0; i < 5; i++) await settle();
    assert.equal(h.messages('COMMAND_RESULT').length, 0, 'no result while it runs');
    assert.deepEqual(h.messages('COMMAND_ACK').map((m) => m.body.stage), ['received', 'executing', 'executing', 'executing'], 'each duplicate is told where it is, at once');
    release();
    await h.core.idle();
    assert.equal(h.kernel.calls(), 1);
    assert.equal(h.messages('COMMAND_RESULT').length, 1);
    await h.deliver(command, 4);
    const results = h.messages('COMMAND_RESULT').map((m) => m.body);
    assert.equal(results.length, 2, 'a duplicate after it finished gets the result');
    assert.ok(results.every((r) => r.status === 'succeeded' && JSON.stringify(r) === JSON.stringify(results[0])));
    // A heartbeat echo confirms the result; a later redelivery (the control plane never got it) is still answered.
    await h.advance(heartbeatIntervalMs + 1);
    assert.equal(h.journal.get(command.id)?.confirmed, true);
    await h.deliver(command, 5);
    assert.equal(h.kernel.calls(), 1);
    assert.equal(h.messages('COMMAND_RESULT').length, 3);
  });

  it('rejects a command with a bad signature without executing or journaling it', async () => {
    const h = await readyHarness();
    const forged = h.command('EXEC_LOCK_SCREEN', {}, h.random.bytes(32));
    await h.deliver(forged);
    assert.equal(h.kernel.calls(), 0);
    const [result] = h.messages('COMMAND_RESULT').map((m) => m.body);
    assert.equal(result?.status, 'rejected');
    assert.equal(result?.error?.code, 'CRYPTO_SIGNATURE_INVALID');
    assert.equal(h.journal.get(forged.id), undefined);
    assert.deepEqual(h.messages('COMMAND_ACK'), []);
  });

  it('rejects an expired command', async () => {
    const h = await readyHarness();
    const now = h.time.nowMs();
    const expired = h.command('EXEC_PING_KERNEL', { issued_at: now - 120_000, expires_at: now - 60_000 });
    await h.deliver(expired);
    assert.equal(h.kernel.calls(), 0);
    assert.equal(h.messages('COMMAND_RESULT')[0]?.body.error?.code, 'COMMAND_EXPIRED');
  });

  it('runs a lower device_seq that has not run yet (redelivery out of order), once', async () => {
    const h = await readyHarness();
    await h.deliver(h.command('EXEC_PING_KERNEL', { device_seq: 7 }));
    const late = h.command('EXEC_PING_KERNEL', { device_seq: 6 });
    await h.deliver(late);
    assert.equal(h.kernel.calls(), 2, 'seq 6 had not run, so it runs after 7');
    assert.equal(h.messages('COMMAND_RESULT').at(-1)!.body.status, 'succeeded');
    const replay = h.command('EXEC_PING_KERNEL', { device_seq: 6 });
    await h.deliver(replay);
    assert.equal(h.kernel.calls(), 2, 'a seq that has run never runs again under another id');
    assert.equal(h.messages('COMMAND_RESULT').at(-1)!.body.error?.code, 'COMMAND_SEQ_STALE');
  });

  it('rejects an unknown command whose device_seq has already run', async () => {
    const h = await readyHarness();
    await h.deliver(h.command('EXEC_PING_KERNEL', { device_seq: 5 }));
    const stale = h.command('EXEC_PING_KERNEL', { device_seq: 5 });
    await h.deliver(stale);
    assert.equal(h.kernel.calls(), 1);
    const last = h.messages('COMMAND_RESULT').at(-1)!.body;
    assert.equal(last.command_id, stale.id);
    assert.equal(last.error?.code, 'COMMAND_SEQ_STALE');
  });

  it('reports kernel refusals as failed results', async () => {
    const h = await readyHarness();
    await h.deliver(h.command('EXEC_COMMIT_UPDATE', { args: { version: '9.9.9' } }));
    const result = h.messages('COMMAND_RESULT')[0]!.body;
    assert.equal(result.status, 'failed');
    assert.match(result.error?.code ?? '', /^KERNEL_/);
  });

  it('reports a native library\'s oversized response length as KERNEL_RESPONSE_INVALID, not a cancelled call', async () => {
    const h = new Harness();
    const device = new NativeIoctlDevice({
      libraryPath: '/nonexistent/libsdc.so', sandboxDir: '/nonexistent', agentPublicKeyPath: '/nonexistent/a', serviceSeedPath: '/nonexistent/s',
      bindings: fakeNativeBindings({ status: KernelStatus.OK, returnedBytes: (outLen) => outLen + 1 }),
    });
    h.createCore(new IoctlKernelBridge({ device, ed25519: provider, agentSeed: h.random.bytes(32), servicePublicKey: provider.publicKeyFromSeed(h.random.bytes(32)), counterStart: 1n }));
    await h.core.idle();
    h.connect();
    await h.deliver(h.command('EXEC_PING_KERNEL'));
    const result = h.messages('COMMAND_RESULT')[0]!.body;
    assert.deepEqual([result.status, result.error?.code], ['failed', 'KERNEL_RESPONSE_INVALID']);
  });

  it('does not re-execute a command a crash left executing: it is reported AGENT_INTERRUPTED', async () => {
    const h = new Harness();
    const hanging = countingKernel(h.time, h.random, { hang: true });
    h.createCore(hanging.kernel);
    await h.core.idle();
    h.connect();
    const command = h.command();
    h.gateway.deliverCommand(command, 1, h.time.nowMs());
    h.pump();
    for (let i = 0; i < 10; i++) await settle();
    assert.deepEqual(h.messages('COMMAND_ACK').map((m) => m.body.stage), ['received', 'executing']);
    assert.equal(h.journal.get(command.id)?.stage, 'executing');
    assert.equal(hanging.calls(), 1);

    // The process dies here; a new core starts over the same journal.
    h.createCore();
    await h.core.idle();
    assert.equal(h.journal.get(command.id)?.result?.error?.code, 'AGENT_INTERRUPTED');
    assert.deepEqual(h.events.filter((e) => e.kind === 'interrupted'), [{ kind: 'interrupted', commandId: command.id }]);
    h.connect();
    await h.core.idle();
    const auth = h.received.flatMap((r) => r.events).find((e) => e.kind === 'authenticated');
    assert.equal(auth?.kind === 'authenticated' && auth.lastCommandSeq, command.device_seq);
    const resent = h.messages('COMMAND_RESULT').map((m) => m.body);
    assert.equal(resent.length, 1);
    assert.equal(resent[0]!.status, 'failed');
    assert.equal(resent[0]!.error?.code, 'AGENT_INTERRUPTED');
    await h.deliver(command, 2);
    assert.equal(h.kernel.calls(), 0);
    assert.equal(h.messages('COMMAND_RESULT').at(-1)!.body.error?.code, 'AGENT_INTERRUPTED');
  });

  // Review h16, finding 1: a journal write that failed (disk full) and was undone.
  it('a delivery the journal could not record is not answered (the gateway retries); a command whose executing record failed is not run and is answered rejected, journaled', async () => {
    const h = new Harness();
    const failing = new Set<'received' | 'executing'>(['received', 'executing']);
    const writeFailed = () => new SdcError('AGENT_JOURNAL_WRITE_FAILED', 'command journal write failed: ENOSPC');
    class FullDiskJournal extends MemoryCommandJournal {
      override received(command: SignedCommand, traceparent?: string): Promise<void> {
        if (failing.delete('received')) return Promise.reject(writeFailed());
        return super.received(command, traceparent);
      }
      override executing(commandId: string): Promise<void> {
        if (failing.delete('executing')) return Promise.reject(writeFailed());
        return super.executing(commandId);
      }
    }
    h.journal = new FullDiskJournal();
    h.createCore();
    await h.core.idle();
    h.connect();
    const command = h.command();
    await h.deliver(command, 1);
    assert.equal(h.messages('COMMAND_ACK').length + h.messages('COMMAND_RESULT').length, 0, 'not answered: a rejected result not journaled could be overtaken by a redelivery that runs');
    assert.equal(h.journal.get(command.id), undefined);
    await h.deliver(command, 2);
    assert.equal(h.kernel.calls(), 0);
    const result = h.messages('COMMAND_RESULT').at(-1)!.body;
    assert.deepEqual([result.status, result.error?.code], ['rejected', 'AGENT_JOURNAL_WRITE_FAILED']);
    assert.equal(h.journal.get(command.id)?.result?.status, 'rejected', 'journaled: a redelivery gets the same answer');
    await h.deliver(command, 3);
    assert.equal(h.kernel.calls(), 0);
  });

  it('executes a command a crash left received but not started', async () => {
    const h = new Harness();
    const command = h.command();
    await h.journal.received(command);
    h.createCore();
    await h.core.idle();
    assert.equal(h.kernel.calls(), 1);
    assert.equal(h.journal.get(command.id)?.result?.status, 'succeeded');
  });

  it('a command a crash left received runs, after the restart, under the trace its delivery carried', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const h = new Harness();
    const command = h.command();
    await h.journal.received(command, traceparent);
    const kernelTraces: Array<string | undefined> = [];
    const base = h.kernel.kernel;
    h.createCore({ ...base, pingKernel: (nonce, auth) => { kernelTraces.push(auth?.traceparent); return base.pingKernel(nonce, auth); } });
    await h.core.idle();
    assert.deepEqual(kernelTraces, [traceparent]);
    assert.equal(h.journal.get(command.id)?.result?.traceparent, traceparent);
    h.connect();
    await h.core.idle();
    assert.deepEqual(h.messages('COMMAND_RESULT').map((m) => [m.body.command_id, m.body.traceparent]), [[command.id, traceparent]]);
  });

  it('re-sends unconfirmed results after reconnecting, and stops once a heartbeat echo confirms them', async () => {
    const h = await readyHarness();
    const command = h.command();
    await h.deliver(command);
    assert.equal(h.messages('COMMAND_RESULT').length, 1);
    h.disconnect();
    assert.equal(h.core.isReady, false);

    h.connect();
    await h.core.idle();
    assert.deepEqual(h.messages('COMMAND_RESULT').map((m) => m.body.command_id), [command.id]);
    assert.equal(h.journal.get(command.id)?.confirmed, false);
    // The next heartbeat follows the re-sent result; its echo proves the gateway read it.
    await h.advance(heartbeatIntervalMs);
    assert.equal(h.journal.get(command.id)?.confirmed, true);

    h.disconnect();
    h.connect();
    await h.core.idle();
    assert.deepEqual(h.messages('COMMAND_RESULT'), []);
    assert.equal(h.kernel.calls(), 1);
  });

  it('drops a connection whose gateway goes silent', async () => {
    const h = await readyHarness();
    // Swallow the gateway's echoes: from the agent's side the gateway is silent.
    const silentHandle = h.handle;
    h.handle = { receive() {}, transportClosed: () => silentHandle.transportClosed() };
    await h.advance(5 * heartbeatIntervalMs);
    assert.equal(h.transportClosed, true);
    assert.equal(h.core.isReady, false);
    assert.ok(h.events.some((e) => e.kind === 'closed'));
  });

  it('closes a connection that never authenticates', async () => {
    const h = new Harness();
    h.createCore();
    h.core.onConnected({ send() {}, close: () => { h.transportClosed = true; } });
    await h.advance(30_000);
    assert.equal(h.transportClosed, true);
  });

  /** A core whose pings take `pingMs` of virtual time each; deliveries sent without waiting for the core. */
  async function slowPingHarness(pingMs: number, journal?: CommandJournal): Promise<{ h: Harness; send: (command: SignedCommand) => Promise<void> }> {
    const h = new Harness();
    if (journal) h.journal = journal;
    const slow: KernelBridge = {
      ...h.kernel.kernel,
      pingKernel: async (nonce) => {
        await new Promise<void>((resolve) => { h.time.schedule(pingMs, resolve); });
        return h.kernel.kernel.pingKernel(nonce);
      },
    };
    h.createCore(slow);
    await h.core.idle();
    h.connect();
    const send = async (command: SignedCommand) => {
      h.gateway.deliverCommand(command, 1, h.time.nowMs());
      h.pump();
      for (let i = 0; i < 5; i++) await settle();
    };
    return { h, send };
  }

  it('acknowledges commands queued behind a long-running one at once, and runs them after it, in order', async () => {
    const { h, send } = await slowPingHarness(70_000);
    const expires_at = h.time.nowMs() + 600_000;
    const long = h.command('EXEC_PING_KERNEL', { expires_at });
    const second = h.command('EXEC_GET_STATUS', { expires_at });
    const third = h.command('EXEC_GET_STATUS', { expires_at });
    for (const command of [long, second, third]) await send(command);
    const acked = () => h.messages('COMMAND_ACK').map((m) => `${m.body.command_id}:${m.body.stage}`);
    assert.deepEqual(acked(), [`${long.id}:received`, `${long.id}:executing`, `${second.id}:received`, `${third.id}:received`], 'taken while the first runs');
    assert.equal(h.messages('COMMAND_RESULT').length, 0);
    // A redelivery of a waiting command (the gateway's retry) is answered from the journal at once.
    await send(second);
    assert.equal(acked().at(-1), `${second.id}:received`);
    await h.advance(70_000);
    assert.deepEqual(h.messages('COMMAND_RESULT').map((m) => [m.body.command_id, m.body.status]),
      [[long.id, 'succeeded'], [second.id, 'succeeded'], [third.id, 'succeeded']]);
    assert.equal(h.kernel.calls(), 3);
  });

  it('after stop, commands waiting behind the one in progress neither start nor get refused: they stay received, and the next run over the journal runs them once', async () => {
    const { h, send } = await slowPingHarness(70_000);
    const expires_at = h.time.nowMs() + 600_000;
    const long = h.command('EXEC_PING_KERNEL', { expires_at });
    const waiting = h.command('EXEC_GET_STATUS', { expires_at });
    for (const command of [long, waiting]) await send(command);
    const stopped = h.core.stop();
    await h.advance(70_000);
    await stopped;
    assert.equal(h.journal.get(long.id)?.result?.status, 'succeeded', 'the command in progress finished and was journaled');
    assert.equal(h.journal.get(waiting.id)?.stage, 'received', 'the waiting one neither ran nor was refused');
    assert.equal(h.kernel.calls(), 1);
    assert.deepEqual(h.events.filter((e) => e.kind === 'rejected'), []);

    h.createCore();
    await h.core.idle();
    assert.equal(h.journal.get(waiting.id)?.result?.status, 'succeeded', 'the next run ran it');
    assert.equal(h.kernel.calls(), 2);
  });

  it('refuses to start a taken command whose deadline passed while it waited: a signed rejected result, AGENT_COMMAND_EXPIRED, no kernel call', async () => {
    const { h, send } = await slowPingHarness(20_000);
    const long = h.command();
    const shortLived = h.command('EXEC_LOCK_SCREEN', { expires_at: h.time.nowMs() + 10_000 });
    await send(long);
    await send(shortLived);
    assert.equal(h.journal.get(shortLived.id)?.stage, 'received', 'taken and acknowledged before its deadline');
    await h.advance(20_000);
    assert.equal(h.kernel.calls(), 1, 'only the long one reached the kernel');
    const refusal = h.messages('COMMAND_RESULT').find((m) => m.body.command_id === shortLived.id)?.body;
    assert.equal(refusal?.status, 'rejected');
    assert.equal(refusal?.error?.code, 'AGENT_COMMAND_EXPIRED');
    assert.equal(h.journal.get(shortLived.id)?.result?.error?.code, 'AGENT_COMMAND_EXPIRED', 'journaled: a redelivery is answered the same way');
    assert.deepEqual(h.events.filter((e) => e.kind === 'rejected'), [{ kind: 'rejected', commandId: shortLived.id, code: 'AGENT_COMMAND_EXPIRED' }]);
    await send(shortLived);
    assert.equal(h.kernel.calls(), 1);
    assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.error?.code, 'AGENT_COMMAND_EXPIRED');
    // A journaled refusal is tracked like any result: confirmed by the next heartbeat echo, not re-sent forever.
    await h.advance(heartbeatIntervalMs);
    assert.equal(h.journal.get(shortLived.id)?.confirmed, true);
  });

  // Security review 2026-12-05, finding 8: the offset comes from the gateway (AUTH_ACK, up to 300 s
  // either way). Here the gateway measures the agent 295 s ahead; whether the gateway's clock lies
  // or the device's is off, the agent cannot tell, so the deadline must also hold on its own clock.
  it('refuses a command past its deadline on the device\'s own clock by more than the grace, whatever offset the gateway handed it (COMMAND_EXPIRED, not run)', async () => {
    const h = new Harness();
    h.agentSkewMs = 295_000;
    h.createCore();
    await h.core.idle();
    h.connect();
    assert.equal(h.events.find((e) => e.kind === 'ready')?.kind, 'ready');
    const now = h.time.nowMs();
    // Live on the gateway's clock for another minute; 235 s past its deadline on the device's own.
    const replayed = h.command('EXEC_PING_KERNEL', { issued_at: now - 10_000, expires_at: now + 60_000 });
    await h.deliver(replayed);
    assert.equal(h.kernel.calls(), 0);
    assert.equal(h.messages('COMMAND_RESULT')[0]?.body.error?.code, 'COMMAND_EXPIRED');
    assert.equal(h.journal.get(replayed.id), undefined, 'not journaled');
    // Within the grace on its own clock (20 s past) it is taken and runs.
    const withinGrace = h.command('EXEC_PING_KERNEL', { issued_at: now - 10_000, expires_at: now + 275_000 });
    await h.deliver(withinGrace);
    assert.equal(h.kernel.calls(), 1);
    assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.status, 'succeeded');
  });

  it('refuses to start a taken command once it is past its deadline on the device\'s own clock by more than the grace (AGENT_COMMAND_EXPIRED)', async () => {
    const h = new Harness();
    h.agentSkewMs = 295_000;
    const slow: KernelBridge = {
      ...h.kernel.kernel,
      pingKernel: async (nonce) => {
        await new Promise<void>((resolve) => { h.time.schedule(20_000, resolve); });
        return h.kernel.kernel.pingKernel(nonce);
      },
    };
    h.createCore(slow);
    await h.core.idle();
    h.connect();
    const now = h.time.nowMs();
    const long = h.command('EXEC_PING_KERNEL', { issued_at: now - 10_000, expires_at: now + 600_000 });
    // Taken 15 s past its deadline on the device's clock (within the grace); 35 s past when its turn comes.
    const waiting = h.command('EXEC_LOCK_SCREEN', { issued_at: now - 10_000, expires_at: now + 280_000 });
    for (const command of [long, waiting]) {
      h.gateway.deliverCommand(command, 1, h.time.nowMs());
      h.pump();
      for (let i = 0; i < 5; i++) await settle();
    }
    assert.equal(h.journal.get(waiting.id)?.stage, 'received', 'taken within the grace');
    await h.advance(20_000);
    assert.equal(h.kernel.calls(), 1, 'only the first reached the kernel');
    assert.equal(h.journal.get(waiting.id)?.result?.error?.code, 'AGENT_COMMAND_EXPIRED');
  });

  // Security review 2026-12-05, finding 7: a journal file created where none was refuses commands
  // issued before it. Review h8, finding 3: its floor is taken at the first AUTH_ACK (the later of
  // the device's clock and the gateway's), not on the device's clock when the file was created.
  describe('the journal floor of a journal created where none was', () => {
    const withFreshJournal = async (body: (h: Harness) => Promise<void>, beforeOpen?: (h: Harness, path: string) => Promise<void>) => {
      const dir = await mkdtemp(join(tmpdir(), 'sdc-agent-floor-'));
      try {
        const h = new Harness();
        const path = join(dir, 'journal.jsonl');
        await beforeOpen?.(h, path);
        h.journal = await FileCommandJournal.open({ path, issuedFloorWhenCreated: true });
        await body(h);
        await h.core.idle();
        await h.journal.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };

    it('a device clock behind when the file is created (an RTC at 1970), corrected before the first session: a command captured before still is refused (AGENT_COMMAND_BEFORE_JOURNAL, not run, not journaled)', async () => {
      await withFreshJournal(async (h) => {
        // NTP corrected the clock before the agent reached a gateway (it could not before: PROTO_CLOCK_SKEW).
        h.agentSkewMs = 0;
        const captured = h.command('EXEC_PING_KERNEL', { issued_at: h.time.nowMs() - 3_600_000, expires_at: h.time.nowMs() + 86_400_000 });
        h.createCore();
        await h.core.idle();
        h.connect();
        await h.core.idle();
        assert.equal(h.journal.issuedFloorPending?.(), false);
        assert.equal(h.journal.issuedFloorMs?.(), h.time.nowMs());
        await h.deliver(captured);
        assert.equal(h.kernel.calls(), 0);
        assert.equal(h.messages('COMMAND_RESULT')[0]?.body.error?.code, 'AGENT_COMMAND_BEFORE_JOURNAL');
        assert.equal(h.journal.get(captured.id), undefined, 'not journaled');
        const issuedAfter = h.command();
        await h.deliver(issuedAfter);
        assert.equal(h.kernel.calls(), 1);
        assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.status, 'succeeded');
      }, async (h) => {
        h.agentSkewMs = 1_000 - h.time.nowMs();
      });
    });

    it('a device clock ahead when the file is created (30 days), corrected later: commands issued from the first session on run', async () => {
      await withFreshJournal(async (h) => {
        h.agentSkewMs = 0;
        h.createCore();
        await h.core.idle();
        h.connect();
        await h.core.idle();
        assert.equal(h.journal.issuedFloorMs?.(), h.time.nowMs());
        const command = h.command();
        await h.deliver(command);
        assert.equal(h.kernel.calls(), 1);
        assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.status, 'succeeded');
      }, async (h) => {
        h.agentSkewMs = 30 * 86_400_000;
      });
    });

    it('a floor already recorded in the future (taken on a clock that ran ahead) is lowered at the next AUTH_ACK, and commands run', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sdc-agent-floor-'));
      try {
        const h = new Harness();
        const path = join(dir, 'journal.jsonl');
        await writeFile(path, JSON.stringify({ r: 'watermark', seq: 0 }) + '\n' + JSON.stringify({ r: 'issued_floor', at_ms: h.time.nowMs() + 30 * 86_400_000 }) + '\n');
        h.journal = await FileCommandJournal.open({ path, issuedFloorWhenCreated: true });
        h.createCore();
        await h.core.idle();
        h.connect();
        await h.core.idle();
        assert.equal(h.journal.issuedFloorMs?.(), h.time.nowMs());
        await h.deliver(h.command());
        assert.equal(h.kernel.calls(), 1);
        assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.status, 'succeeded');
        await h.journal.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('a fresh enrollment with a right clock: a command delivered right after AUTH_ACK (before the floor is durable) waits for it and runs', async () => {
      await withFreshJournal(async (h) => {
        h.createCore();
        await h.core.idle();
        h.connect();
        // Not awaited: the floor's write is still on the intake lane when the delivery arrives.
        const command = h.command();
        await h.deliver(command);
        assert.equal(h.journal.issuedFloorMs?.(), command.issued_at);
        assert.equal(h.kernel.calls(), 1);
        assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.status, 'succeeded');
      });
    });

    it('a device clock behind the gateway\'s within the session bound: the floor is the gateway\'s time, and a command issued then runs', async () => {
      await withFreshJournal(async (h) => {
        h.agentSkewMs = -200_000;
        h.createCore();
        await h.core.idle();
        h.connect();
        await h.core.idle();
        const floorMs = h.journal.issuedFloorMs?.() ?? 0;
        assert.ok(Math.abs(floorMs - h.time.nowMs()) < 1_000, `floor ${floorMs - h.time.nowMs()} ms off the gateway clock`);
        await h.deliver(h.command());
        assert.equal(h.kernel.calls(), 1);
      });
    });
  });

  it('a command that started before its deadline runs to the end even if the kernel call outlasts it', async () => {
    const { h, send } = await slowPingHarness(20_000);
    const command = h.command('EXEC_PING_KERNEL', { expires_at: h.time.nowMs() + 10_000 });
    await send(command);
    await h.advance(20_000);
    assert.equal(h.messages('COMMAND_RESULT')[0]?.body.status, 'succeeded');
    assert.equal(h.kernel.calls(), 1);
  });

  it('does not answer a delivery it cannot journal (journal full): back-pressure, so the gateway retries', async () => {
    const { h, send } = await slowPingHarness(30_000, new MemoryCommandJournal({ unfinishedMax: 1 }));
    const running = h.command();
    const refused = h.command('EXEC_GET_STATUS');
    await send(running);
    await send(refused);
    assert.equal(h.journal.get(refused.id), undefined);
    assert.deepEqual(h.messages('COMMAND_ACK').map((m) => m.body.command_id), [running.id, running.id]);
    assert.deepEqual(h.messages('COMMAND_RESULT'), [], 'no signed refusal: it may still run when delivered again');
    await h.advance(30_000);
    await send(refused);
    await h.advance(1);
    assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.command_id, refused.id);
    assert.equal(h.messages('COMMAND_RESULT').at(-1)?.body.status, 'succeeded');
  });

  for (const skewMs of [20_000, -90_000]) {
    it(`judges deadlines on the gateway clock when its own clock is ${skewMs / 1000} s off`, async () => {
      const h = new Harness();
      h.agentSkewMs = skewMs;
      h.createCore();
      await h.core.idle();
      h.connect();
      assert.equal(h.core.isReady, true, 'the session opens');
      const now = h.time.nowMs();
      // Live for 15 s more on the gateway clock (an agent 20 s ahead used to refuse it).
      const live = h.command('EXEC_PING_KERNEL', { issued_at: now - 1_000, expires_at: now + 15_000 });
      // Expired 5 s ago on the gateway clock (an agent 90 s behind used to run it).
      const dead = h.command('EXEC_PING_KERNEL', { issued_at: now - 60_000, expires_at: now - 5_000 });
      await h.deliver(live);
      await h.deliver(dead);
      const results = h.messages('COMMAND_RESULT').map((m) => m.body);
      assert.deepEqual(results.map((r) => [r.command_id, r.status, r.error?.code]), [[live.id, 'succeeded', undefined], [dead.id, 'rejected', 'COMMAND_EXPIRED']]);
      assert.equal(h.kernel.calls(), 1);
      assert.equal(results[0]!.finished_at, now, 'stamped on the gateway clock');
      // Its frames are stamped on the gateway's clock too, so the gateway keeps accepting them.
      await h.advance(heartbeatIntervalMs);
      assert.equal(h.messages('HEARTBEAT').length, 1);
      assert.equal(h.gateway.state, 'ready');
    });
  }

  it('frames it sends are valid envelopes signed by the device key id', async () => {
    const h = await readyHarness();
    await h.deliver(h.command());
    for (const { bytes } of h.received) assert.equal(decodeEnvelope(bytes).sig.kid, deviceKid(deviceId));
  });
});

// The agent's silence check after a stall (core/time/late-timer.ts; docs/gateway.md, "Deadlines
// after a stall"). The agent process is stalled as Node runs one: its timers that fell due during
// the stall fire when it ends, with the clock at the stall's end, and only then are the frames
// that arrived meanwhile read. Interval 10 s, so the bound is 30 s of silence, lateness up to 1 s
// is ordinary and a deferral lasts at most 10 s.
describe('agent core: the silence check after a stall', () => {
  /** A ready agent whose process can stall; frames from the gateway can be held in its socket or lost. */
  async function stallableHarness() {
    const h = new Harness();
    const scheduler = new StallingScheduler(h.time);
    h.scheduler = scheduler;
    h.createCore();
    await h.core.idle();
    h.connect();
    const startMs = h.time.nowMs();
    const socket = h.handle;
    const wire = { mode: 'open' as 'open' | 'hold' | 'lose', buffered: [] as Uint8Array[] };
    h.handle = {
      receive: (bytes) => {
        if (wire.mode === 'open') socket.receive(bytes);
        else if (wire.mode === 'hold') wire.buffered.push(bytes);
      },
      transportClosed: () => socket.transportClosed(),
    };
    /** Runs to `atMs` after the session started. */
    const runTo = (atMs: number) => h.advance(startMs + atMs - h.time.nowMs());
    /** The process runs again: late timers first, then the frames that waited in the socket. */
    const endStall = async () => {
      scheduler.resume();
      if (wire.mode === 'hold') wire.mode = 'open';
      for (const bytes of wire.buffered.splice(0)) socket.receive(bytes);
      await h.advance(0);
    };
    /** Heartbeats the gateway read, as ms after the session started (uptime_ms counts from createCore, here the same instant). */
    const heartbeatsAtMs = () => h.messages('HEARTBEAT').map((m) => m.body.uptime_ms);
    const closeReasons = () => h.events.flatMap((e) => (e.kind === 'closed' ? [e.reason] : []));
    return { h, scheduler, wire, runTo, endStall, heartbeatsAtMs, closeReasons };
  }

  /**
   * Heartbeats at 10 s (echo read) and 20 s; the process stalls right after sending the second, so
   * its echo arrives in the stall; the stall ends at 45 s, when the tick due at 30 s fires first:
   * 35 s since the echo read at 10 s, 15 s late.
   */
  async function stallAfterSecondHeartbeat(lostInTheStall: boolean) {
    const t = await stallableHarness();
    await t.runTo(2 * heartbeatIntervalMs - 1);
    t.wire.mode = lostInTheStall ? 'lose' : 'hold';
    await t.runTo(2 * heartbeatIntervalMs);
    t.scheduler.stall();
    await t.runTo(45_000);
    assert.equal(t.h.transportClosed, false, 'nothing runs in the stall');
    await t.endStall();
    return t;
  }

  it('keeps a session whose gateway echo waited in the socket while the process stalled', async () => {
    const t = await stallAfterSecondHeartbeat(false);
    assert.equal(t.h.transportClosed, false, 'dropped by a tick that ran before the waiting echo was read');
    assert.equal(t.h.core.isReady, true);
    // The late tick still sent its heartbeat, and judges again one deferral (10 s) later: with the echo read, the session stays.
    assert.deepEqual(t.heartbeatsAtMs(), [10_000, 20_000, 45_000]);
    await t.runTo(55_000);
    await t.runTo(65_000);
    assert.deepEqual(t.heartbeatsAtMs(), [10_000, 20_000, 45_000, 55_000, 65_000], 'back to one heartbeat an interval');
    assert.equal(t.h.transportClosed, false);
    assert.deepEqual(t.closeReasons(), []);
  });

  it('still drops a gateway that is really silent, exactly one deferral after the stall', async () => {
    const t = await stallAfterSecondHeartbeat(true);
    assert.equal(t.h.transportClosed, false, 'judged before the frames of the stall could be read');
    await t.runTo(55_000 - 1);
    assert.equal(t.h.transportClosed, false);
    await t.runTo(55_000);
    assert.equal(t.h.transportClosed, true);
    assert.equal(t.h.core.isReady, false);
    // The judgement after a deferral is final: 45 s since the last frame read, at 10 s.
    assert.deepEqual(t.closeReasons(), ['gateway silent for 45000 ms']);
  });

  it('without a stall, drops a silent gateway at the first tick past the bound, as before (no deferral on time)', async () => {
    const t = await stallableHarness();
    // Silent from the AUTH_ACK on: ticks at 10, 20 and 30 s (30 s is not past the bound), dropped at 40 s.
    t.wire.mode = 'lose';
    await t.runTo(4 * heartbeatIntervalMs - 1);
    assert.equal(t.h.transportClosed, false);
    await t.runTo(4 * heartbeatIntervalMs);
    assert.equal(t.h.transportClosed, true);
    assert.deepEqual(t.closeReasons(), ['gateway silent for 40000 ms']);
  });

  it('a second stall right after a deferral is not deferred again when nothing was heard', async () => {
    const t = await stallAfterSecondHeartbeat(true);
    // Deferred to 55 s; the process stalls again until 70 s: that late tick judges, finally.
    t.scheduler.stall();
    await t.runTo(70_000);
    assert.equal(t.h.transportClosed, false);
    await t.endStall();
    assert.equal(t.h.transportClosed, true);
    assert.deepEqual(t.closeReasons(), ['gateway silent for 60000 ms']);
  });
});
