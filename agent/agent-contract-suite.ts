/**
 * The one contract suite for a device agent: what every agent promises the gateway, run against
 * each implementation through `runAgentContractSuite(name, factory)` (like the kernel contract
 * suite). The real agent core with its journal (agent/agent-contract.test.ts) and the
 * simulator's agent (sim/sim-agent-contract.test.ts) both pass it.
 *
 * The suite plays the gateway: a GatewayConnection per connection the agent's driver opens, on
 * virtual time, with the mock kernel behind a call counter. Promises checked: only commands signed
 * by a configured key run; none runs past its TTL; a command is persisted before it is
 * acknowledged; each command id and each device_seq runs at most once; a duplicate is answered
 * from the journal; results come in the order the commands were delivered; a restart keeps all
 * of that.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import type { Ed25519Provider } from '../core/ports/ports.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import type { Opcode } from '../core/protocol/messages/opcodes.js';
import { GatewayConnection, gatewayKid, type GatewayEvent } from '../core/protocol/session/gateway-connection.js';
import { signCommand } from '../core/protocol/signed-command.js';
import { SeededRandom } from '../core/random/prng.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import { IoctlKernelBridge, type KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import type { CommandJournal } from './command-journal.js';

/** The agent's side of a connection, as the suite's gateway sees it. */
export interface AgentSideTransport {
  send(bytes: Uint8Array): void;
  close(): void;
}

/** The gateway's side of a connection, as the agent's driver sees it. */
export interface GatewaySideHandle {
  receive(bytes: Uint8Array): void;
  transportClosed(): void;
}

/** Everything a target needs to build its agent. */
export interface AgentContractWorld {
  readonly time: VirtualTime;
  readonly random: SeededRandom;
  readonly provider: Ed25519Provider;
  readonly deviceId: string;
  readonly deviceSeed: Uint8Array;
  readonly devicePublicKey: Uint8Array;
  readonly heartbeatIntervalMs: number;
  readonly telemetryIntervalMs: number;
  resolveGatewayKey(kid: string): Uint8Array | undefined;
  resolveCommandKey(kid: string): Uint8Array | undefined;
  /** The kernel the agent must use: the mock kernel, its calls counted by the suite. */
  readonly kernel: KernelBridge;
  /** The suite's gateway: the target's driver calls it for each connection it opens. */
  accept(transport: AgentSideTransport): GatewaySideHandle;
}

export interface AgentTarget {
  /** The agent's journal, read by the suite to check "persisted before acknowledged". */
  readonly journal: CommandJournal;
  /** Boots the agent; its driver connects through world.accept. */
  start(): Promise<void>;
  /** The process dies and boots again with the same journal and kernel (a file and a device survive it). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export type AgentTargetFactory = (world: AgentContractWorld) => Promise<AgentTarget>;

/** Virtual time any one wait may take: far below the commands' TTL and the heartbeat deadline. */
const waitVirtualMsMax = 30_000;
const stepMs = 5;
const commandTtlMs = 600_000;
const commandKid = 'cp:contract';
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The suite's gateway end and what it observed. */
class ContractGateway {
  readonly received: GatewayEvent[] = [];
  /** COMMAND_ACKs that named a command the journal did not hold yet. */
  readonly ackedBeforePersisted: string[] = [];
  connection: GatewayConnection | undefined;
  #agent: AgentSideTransport | undefined;
  #sessions = 0;
  journal: CommandJournal | undefined;

  constructor(private readonly world: Omit<AgentContractWorld, 'accept' | 'kernel'>, private readonly gatewaySeed: Uint8Array) {}

  accept(transport: AgentSideTransport): GatewaySideHandle {
    this.#sessions += 1;
    const connection = new GatewayConnection({
      deviceId: this.world.deviceId, signer: { kid: gatewayKid('gw-contract'), seed: this.gatewaySeed, provider: this.world.provider },
      gatewayId: 'gw-contract', sessionId: `contract-${this.#sessions}`, devicePublicKey: this.world.devicePublicKey,
      random: this.world.random, heartbeatIntervalMs: this.world.heartbeatIntervalMs, authTimeoutMs: waitVirtualMsMax, sessionToken: 'token',
    });
    this.connection = connection;
    this.#agent = transport;
    connection.start(this.world.time.nowMs());
    this.flush();
    return {
      receive: (bytes) => {
        if (this.connection !== connection) return;
        for (const event of connection.receive(bytes, this.world.time.nowMs())) this.#observe(event);
        this.flush();
      },
      transportClosed: () => { connection.transportLost(this.world.time.nowMs()); },
    };
  }

  #observe(event: GatewayEvent): void {
    this.received.push(event);
    if (event.kind !== 'message' || event.message.type !== 'COMMAND_ACK') return;
    const commandId = (event.message.body as MessageBody<'COMMAND_ACK'>).command_id;
    if (this.journal?.get(commandId) === undefined) this.ackedBeforePersisted.push(commandId);
  }

  flush(): void {
    const agent = this.#agent;
    if (this.connection === undefined || agent === undefined) return;
    for (const frame of this.connection.takeOutgoing()) queueMicrotask(() => agent.send(frame));
  }

  get ready(): boolean {
    return this.connection?.state === 'ready';
  }

  deliver(command: SignedCommand, attempt: number): void {
    this.connection!.deliverCommand(command, attempt, this.world.time.nowMs());
    this.flush();
  }

  messages<T extends 'COMMAND_ACK' | 'COMMAND_RESULT'>(type: T): Array<MessageBody<T>> {
    return this.received.flatMap((e) => (e.kind === 'message' && e.message.type === type ? [e.message.body as MessageBody<T>] : []));
  }
}

/** One agent under test with the suite's gateway, kernel and clock around it. */
class ContractRun {
  readonly time = new VirtualTime(1_800_000_000_000);
  readonly random = new SeededRandom(11);
  readonly provider = createNodeEd25519Provider();
  readonly commandSeed = this.random.bytes(32);
  readonly gateway: ContractGateway;
  readonly world: AgentContractWorld;
  kernelCalls = 0;
  target!: AgentTarget;
  #seq = 0;

  constructor() {
    const deviceSeed = this.random.bytes(32);
    const gatewaySeed = this.random.bytes(32);
    const base = {
      time: this.time, random: this.random, provider: this.provider, deviceId: 'dev-contract', deviceSeed,
      devicePublicKey: this.provider.publicKeyFromSeed(deviceSeed), heartbeatIntervalMs: 60_000, telemetryIntervalMs: 600_000,
      resolveGatewayKey: (kid: string) => (kid === gatewayKid('gw-contract') ? this.provider.publicKeyFromSeed(gatewaySeed) : undefined),
      resolveCommandKey: (kid: string) => (kid === commandKid ? this.provider.publicKeyFromSeed(this.commandSeed) : undefined),
    };
    this.gateway = new ContractGateway(base, gatewaySeed);
    this.world = { ...base, kernel: this.#countingKernel(), accept: (transport) => this.gateway.accept(transport) };
  }

  async start(factory: AgentTargetFactory): Promise<void> {
    this.target = await factory(this.world);
    this.gateway.journal = this.target.journal;
    await this.target.start();
    await this.until(() => this.gateway.ready, 'the session ready');
  }

  #countingKernel(): KernelBridge {
    const agentSeed = this.random.bytes(32);
    const serviceSeed = this.random.bytes(32);
    const device = new MockIoctlDevice({
      ed25519: this.provider, serviceSeed, agentPublicKey: this.provider.publicKeyFromSeed(agentSeed), clock: this.time,
      commandKeys: { deviceId: 'dev-contract', keys: [this.provider.publicKeyFromSeed(this.commandSeed)] },
    });
    const bridge = new IoctlKernelBridge({ device, ed25519: this.provider, agentSeed, servicePublicKey: this.provider.publicKeyFromSeed(serviceSeed), counterStart: 1n });
    const count = <T>(call: () => Promise<T>): Promise<T> => { this.kernelCalls += 1; return call(); };
    return {
      backend: bridge.backend,
      pingKernel: (nonce, auth) => count(() => bridge.pingKernel(nonce, auth)),
      lockScreen: (auth) => count(() => bridge.lockScreen(auth)),
      getProcessList: (n, auth) => count(() => bridge.getProcessList(n, auth)),
      stageUpdate: (a, auth) => count(() => bridge.stageUpdate(a, auth)),
      commitUpdate: (v, auth, options) => count(() => bridge.commitUpdate(v, auth, options)),
      rollbackUpdate: (auth) => count(() => bridge.rollbackUpdate(auth)),
      getStatus: (auth) => count(() => bridge.getStatus(auth)),
      close: () => bridge.close(),
    };
  }

  /** Advances virtual time in small steps until `check` holds; fails after waitVirtualMsMax of virtual time. */
  async until(check: () => boolean, what: string): Promise<void> {
    const deadlineMs = this.time.nowMs() + waitVirtualMsMax;
    for (;;) {
      for (let turn = 0; turn < 5; turn++) await settle();
      if (check()) return;
      if (this.time.nowMs() >= deadlineMs) throw new Error(`${what}: not within ${waitVirtualMsMax} ms of virtual time`);
      await this.time.runUntil(this.time.nowMs() + stepMs, settle);
    }
  }

  command(overrides: Partial<SignedCommand> = {}, opcode: Opcode = 'EXEC_PING_KERNEL', seed = this.commandSeed): SignedCommand {
    this.#seq += 1;
    const issuedAt = this.time.nowMs();
    const unsigned = {
      id: `cmd-${this.#seq}`, device_id: this.world.deviceId, opcode, args: {}, issued_at: issuedAt, expires_at: issuedAt + commandTtlMs,
      device_seq: this.#seq, issuer: 'operator:contract', ...overrides,
    };
    return signCommand({ command: unsigned, kid: commandKid, seed, provider: this.provider });
  }

  results(): Array<MessageBody<'COMMAND_RESULT'>> {
    return this.gateway.messages('COMMAND_RESULT');
  }

  /** Delivers and waits until the agent has answered with `resultsAfter` results in all. */
  async deliver(command: SignedCommand, attempt = 1, resultsAfter = this.results().length + 1): Promise<void> {
    this.gateway.deliver(command, attempt);
    await this.until(() => this.results().length >= resultsAfter, `result ${resultsAfter} (${command.id})`);
  }
}

export function runAgentContractSuite(name: string, factory: AgentTargetFactory): void {
  describe(`agent contract: ${name}`, () => {
    let run: ContractRun;

    beforeEach(async () => {
      run = new ContractRun();
      await run.start(factory);
    });

    afterEach(async () => {
      await run.target.stop();
      assert.deepEqual(run.gateway.ackedBeforePersisted, [], 'a COMMAND_ACK for a command not yet in the journal');
    });

    it('runs a signed command once: ACK received, ACK executing, a succeeded result, persisted before each ACK', async () => {
      const command = run.command();
      await run.deliver(command);
      assert.equal(run.kernelCalls, 1);
      assert.deepEqual(run.gateway.messages('COMMAND_ACK').map((a) => a.stage), ['received', 'executing']);
      assert.deepEqual(run.results().map((r) => [r.command_id, r.status]), [[command.id, 'succeeded']]);
      assert.notEqual(run.target.journal.get(command.id), undefined);
    });

    it('refuses a command not signed by a configured key: rejected, never run, never journaled or acknowledged', async () => {
      const forged = run.command({}, 'EXEC_LOCK_SCREEN', run.random.bytes(32));
      await run.deliver(forged);
      assert.equal(run.kernelCalls, 0);
      const [result] = run.results();
      assert.equal(result?.status, 'rejected');
      assert.equal(result?.error?.code, 'CRYPTO_SIGNATURE_INVALID');
      assert.equal(run.target.journal.get(forged.id), undefined);
      assert.deepEqual(run.gateway.messages('COMMAND_ACK'), []);
    });

    it('refuses a command past its TTL without running it', async () => {
      const now = run.time.nowMs();
      const expired = run.command({ issued_at: now - 120_000, expires_at: now - 60_000 });
      await run.deliver(expired);
      assert.equal(run.kernelCalls, 0);
      assert.equal(run.results()[0]?.status, 'rejected');
      assert.equal(run.results()[0]?.error?.code, 'COMMAND_EXPIRED');
    });

    it('runs a command id at most once: a duplicate is answered from the journal with the same result', async () => {
      const command = run.command();
      await run.deliver(command, 1);
      await run.deliver(command, 2);
      assert.equal(run.kernelCalls, 1);
      const [first, second] = run.results();
      assert.equal(first?.status, 'succeeded');
      assert.deepEqual(second, first);
    });

    it('runs a device_seq at most once: another command with a seq that ran is refused COMMAND_SEQ_STALE', async () => {
      await run.deliver(run.command({ device_seq: 5 }));
      const stale = run.command({ device_seq: 5 });
      await run.deliver(stale);
      assert.equal(run.kernelCalls, 1);
      const last = run.results().at(-1);
      assert.equal(last?.command_id, stale.id);
      assert.equal(last?.error?.code, 'COMMAND_SEQ_STALE');
    });

    it('answers commands delivered back to back in delivery order', async () => {
      const commands = [run.command(), run.command({}, 'EXEC_GET_STATUS'), run.command()];
      for (const command of commands) run.gateway.deliver(command, 1);
      await run.until(() => run.results().length >= commands.length, 'three results');
      assert.deepEqual(run.results().map((r) => [r.command_id, r.status]), commands.map((c) => [c.id, 'succeeded']));
      assert.equal(run.kernelCalls, commands.length);
    });

    it('keeps its promises across a restart: a command run before the crash is answered from the journal, not run again', async () => {
      const command = run.command();
      await run.deliver(command);
      const resultsOf = () => run.results().filter((r) => r.command_id === command.id);
      await run.target.restart();
      await run.until(() => run.gateway.ready, 'the session after the restart');
      // The agent may re-send its unconfirmed result on its own once connected; let that arrive first.
      await run.time.runUntil(run.time.nowMs() + 1_000, settle);
      const answeredBefore = resultsOf().length;
      run.gateway.deliver(command, 2);
      await run.until(() => resultsOf().length > answeredBefore, 'the duplicate answered');
      assert.equal(run.kernelCalls, 1, 'not run again');
      const [first, ...again] = resultsOf();
      for (const result of again) assert.deepEqual(result, first);
      const stale = run.command({ device_seq: command.device_seq });
      await run.deliver(stale);
      assert.equal(run.kernelCalls, 1);
      assert.equal(run.results().at(-1)?.error?.code, 'COMMAND_SEQ_STALE');
    });
  });
}
