import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import type { Opcode } from '../core/protocol/messages/opcodes.js';
import { GatewayConnection, deviceKid, gatewayKid, type GatewayEvent } from '../core/protocol/session/gateway-connection.js';
import { signCommand } from '../core/protocol/signed-command.js';
import { parsePolicy } from '../core/protocol/policy.js';
import { cutPolicyBundle, signPolicyBundle, type SignedPolicyBundle } from '../core/protocol/policy-bundle.js';
import { MockIoctlDevice } from '../kernel/mock/mock-kernel.js';
import { IoctlKernelBridge, type KernelBridge } from '../kernel/bridge/kernel-bridge.js';
import { SeededRandom } from '../core/random/prng.js';
import { VirtualTime } from '../core/time/virtual-time.js';
import { createAgentCore, type AgentConnectionHandle, type AgentCore, type AgentCoreEvent } from './agent-core.js';
import { MemoryCommandJournal } from './command-journal.js';
import { createMemoryPolicyBundleStore, type PolicyBundleStore } from './policy-bundle-guard.js';
import { createFilePolicyBundleStore, policyBundleFileName } from './policy-bundle-file.js';
import { createSyntheticMetricsSource } from './telemetry/synthetic-metrics.js';

const provider = createNodeEd25519Provider();
const deviceId = 'lab-1';
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Admins may send everything, except EXEC_LOCK_SCREEN to lab devices, which nobody may. */
const policyAt = (revision: number, extraRules: unknown[] = []) => parsePolicy({
  version: 1, revision,
  rules: [
    { id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' },
    { id: 'no-lock-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_LOCK_SCREEN'], devices: { ids: ['lab-*'] } },
    ...extraRules,
  ],
});

/**
 * One agent core over an in-memory link to a GatewayConnection, on virtual time (the pattern of
 * agent-core.test.ts). The kernel counts calls, so "never executed" is observed, not assumed.
 */
class World {
  readonly time = new VirtualTime(1_800_000_000_000);
  readonly random = new SeededRandom(11);
  readonly keys = { device: this.random.bytes(32), gateway: this.random.bytes(32), commands: this.random.bytes(32) };
  readonly kernelSeeds = { agent: this.random.bytes(32), service: this.random.bytes(32) };
  readonly journal = new MemoryCommandJournal();
  events: AgentCoreEvent[] = [];
  kernelCalls = 0;
  core!: AgentCore;
  gateway!: GatewayConnection;
  handle!: AgentConnectionHandle;
  received: GatewayEvent[] = [];
  #sessions = 0;
  #seq = 0;

  constructor(readonly store: PolicyBundleStore) {}

  kernel(): KernelBridge {
    const device = new MockIoctlDevice({ ed25519: provider, serviceSeed: this.kernelSeeds.service, agentPublicKey: provider.publicKeyFromSeed(this.kernelSeeds.agent), clock: this.time, lockScreenSupported: true });
    const bridge = new IoctlKernelBridge({ device, ed25519: provider, agentSeed: this.kernelSeeds.agent, servicePublicKey: provider.publicKeyFromSeed(this.kernelSeeds.service), counterStart: BigInt(this.#sessions * 1000 + 1) });
    const count = <T>(call: () => Promise<T>) => { this.kernelCalls += 1; return call(); };
    return {
      backend: bridge.backend,
      pingKernel: (nonce) => count(() => bridge.pingKernel(nonce)),
      lockScreen: () => count(() => bridge.lockScreen()),
      getProcessList: (n) => count(() => bridge.getProcessList(n)),
      stageUpdate: (a) => count(() => bridge.stageUpdate(a)),
      commitUpdate: (v) => count(() => bridge.commitUpdate(v)),
      rollbackUpdate: () => count(() => bridge.rollbackUpdate()),
      getStatus: () => count(() => bridge.getStatus()),
      close: () => bridge.close(),
    };
  }

  /** A new agent process: a fresh core over the same journal and bundle store. */
  async startAgent(): Promise<void> {
    this.core = createAgentCore({
      deviceId, signer: { kid: deviceKid(deviceId), seed: this.keys.device, provider },
      resolveGatewayKey: (kid) => (kid === gatewayKid('gw-1') ? provider.publicKeyFromSeed(this.keys.gateway) : undefined),
      resolveCommandKey: (kid) => (kid === 'cp:test' ? provider.publicKeyFromSeed(this.keys.commands) : undefined),
      kernel: this.kernel(), journal: this.journal, clock: this.time, random: this.random, scheduler: this.time,
      telemetrySource: createSyntheticMetricsSource({ random: this.random }), telemetryIntervalMs: 60_000, agentVersion: 'test/1',
      onEvent: (event) => this.events.push(event), policyBundleStore: this.store,
    });
    this.core.start();
    await this.core.idle();
  }

  connect(): void {
    this.#sessions += 1;
    this.received = [];
    const gateway = new GatewayConnection({
      deviceId, signer: { kid: gatewayKid('gw-1'), seed: this.keys.gateway, provider }, gatewayId: 'gw-1', sessionId: `session-${this.#sessions}`,
      devicePublicKey: provider.publicKeyFromSeed(this.keys.device), random: this.random, heartbeatIntervalMs: 10_000, authTimeoutMs: 5_000, sessionToken: 'token',
    });
    this.gateway = gateway;
    this.handle = this.core.onConnected({
      send: (bytes) => {
        if (this.gateway !== gateway) return;
        this.received.push(...gateway.receive(bytes, this.time.nowMs()));
        this.pump();
      },
      close: () => undefined,
    });
    gateway.start(this.time.nowMs());
    this.pump();
  }

  pump(): void {
    for (const frame of this.gateway.takeOutgoing()) this.handle.receive(frame);
  }

  bundle(revision: number, options: { seed?: Uint8Array; device?: string; validityMs?: number; extraRules?: unknown[] } = {}): SignedPolicyBundle {
    const bundle = cutPolicyBundle({
      policy: policyAt(revision, options.extraRules), version: revision, device: { id: options.device ?? deviceId }, issuedAtMs: this.time.nowMs(),
      ...(options.validityMs === undefined ? {} : { validityMs: options.validityMs }),
    });
    return signPolicyBundle({ bundle, kid: 'cp:test', seed: options.seed ?? this.keys.commands, provider });
  }

  async push(signed: SignedPolicyBundle): Promise<void> {
    this.gateway.sendPolicyBundle({ signed }, this.time.nowMs());
    this.pump();
    await settle();
    await this.core.idle();
  }

  command(opcode: Opcode, requester?: { name: string; role: 'operator' | 'admin' }): SignedCommand {
    this.#seq += 1;
    const issuedAt = this.time.nowMs();
    return signCommand({
      command: {
        id: `cmd-${this.#seq}`, device_id: deviceId, opcode, args: {}, issued_at: issuedAt, expires_at: issuedAt + 60_000, device_seq: this.#seq, issuer: 'cp',
        ...(requester === undefined ? {} : { requester }),
      },
      kid: 'cp:test', seed: this.keys.commands, provider,
    });
  }

  async deliver(command: SignedCommand): Promise<MessageBody<'COMMAND_RESULT'> | undefined> {
    this.gateway.deliverCommand(command, 1, this.time.nowMs());
    this.pump();
    await settle();
    await this.core.idle();
    return this.bodies('COMMAND_RESULT').find((result) => result.command_id === command.id);
  }

  bodies<T extends 'COMMAND_RESULT' | 'POLICY_BUNDLE_REPORT'>(type: T): Array<MessageBody<T>> {
    return this.received.flatMap((event) => (event.kind === 'message' && event.message.type === type ? [event.message.body as MessageBody<T>] : []));
  }
}

async function connectedWorld(store: PolicyBundleStore = createMemoryPolicyBundleStore()): Promise<World> {
  const world = new World(store);
  await world.startAgent();
  world.connect();
  assert.equal(world.core.isReady, true);
  return world;
}

describe('the agent and its policy bundle', () => {
  it('without a bundle, commands signed by the control plane run (enforcement starts at the first bundle)', async () => {
    const world = await connectedWorld();
    const result = await world.deliver(world.command('EXEC_LOCK_SCREEN'));
    // Executed (the kernel was called), whatever the kernel answered: the bundle did not refuse it.
    assert.notEqual(result?.status, 'rejected', JSON.stringify(result));
    assert.equal(world.kernelCalls, 1);
  });

  it('accepts a bundle, reports it, and refuses what it denies with POLICY_BUNDLE_DENIED, never executing it', async () => {
    const world = await connectedWorld();
    await world.push(world.bundle(3));
    assert.deepEqual(world.bodies('POLICY_BUNDLE_REPORT'), [{ version: 3, status: 'accepted', held_version: 3 }]);
    const denied = await world.deliver(world.command('EXEC_LOCK_SCREEN'));
    assert.equal(denied?.status, 'rejected');
    assert.equal(denied?.error?.code, 'POLICY_BUNDLE_DENIED');
    assert.match(denied?.error?.message ?? '', /no-lock-lab/);
    assert.equal(world.kernelCalls, 0);
    assert.notEqual((await world.deliver(world.command('EXEC_GET_STATUS')))?.status, 'rejected');
    assert.equal(world.kernelCalls, 1);
  });

  it('refuses and reports a bad signature, a lower version, an expired bundle and another device\'s, keeping the held one', async () => {
    const world = await connectedWorld();
    await world.push(world.bundle(5));
    await world.push(world.bundle(6, { seed: world.random.bytes(32) }));
    await world.push(world.bundle(4));
    await world.push(world.bundle(7, { device: 'lab-2' }));
    const expiring = world.bundle(8, { validityMs: 1_000 });
    await world.time.runUntil(world.time.nowMs() + 2_000, settle);
    await world.push(expiring);
    const reports = world.bodies('POLICY_BUNDLE_REPORT').map((report) => [report.version, report.status, report.error?.code, report.held_version]);
    assert.deepEqual(reports, [
      [5, 'accepted', undefined, 5],
      [6, 'refused', 'POLICY_BUNDLE_SIGNATURE_INVALID', 5],
      [4, 'refused', 'POLICY_BUNDLE_VERSION_STALE', 5],
      [7, 'refused', 'POLICY_BUNDLE_DEVICE_MISMATCH', 5],
      [8, 'refused', 'POLICY_BUNDLE_EXPIRED', 5],
    ]);
    const codes = world.events.flatMap((e) => (e.kind === 'policy_bundle' ? [e.code ?? e.status] : []));
    assert.deepEqual(codes, ['accepted', 'POLICY_BUNDLE_SIGNATURE_INVALID', 'POLICY_BUNDLE_VERSION_STALE', 'POLICY_BUNDLE_DEVICE_MISMATCH', 'POLICY_BUNDLE_EXPIRED']);
    // The held version 5 still decides.
    assert.equal((await world.deliver(world.command('EXEC_LOCK_SCREEN')))?.error?.code, 'POLICY_BUNDLE_DENIED');
  });

  it('an expired held bundle still decides, also after a restart (docs/policy.md "Expiry"): its denies stay refused, its allows still run', async () => {
    const world = await connectedWorld();
    await world.push(world.bundle(3, { validityMs: 10_000 }));
    // The control plane is unreachable past the bundle's expiry: no fresh bundle arrives.
    await world.time.runUntil(world.time.nowMs() + 20_000, settle);
    assert.equal((await world.deliver(world.command('EXEC_LOCK_SCREEN')))?.error?.code, 'POLICY_BUNDLE_DENIED');
    assert.equal(world.kernelCalls, 0);
    assert.notEqual((await world.deliver(world.command('EXEC_GET_STATUS')))?.status, 'rejected', 'expiry does not turn the bundle into refuse-all');
    assert.equal(world.kernelCalls, 1);
    await world.core.stop();
    await world.startAgent();
    world.connect();
    assert.equal((await world.deliver(world.command('EXEC_LOCK_SCREEN')))?.error?.code, 'POLICY_BUNDLE_DENIED', 'reloaded expired, still enforced');
    assert.equal(world.kernelCalls, 1);
  });

  it('a role-specific deny holds on the device for a command that names its requester\'s role; another role\'s command runs', async () => {
    const world = await connectedWorld();
    await world.push(world.bundle(4, { extraRules: [
      { id: 'ops-all', effect: 'allow', roles: ['operator'], opcodes: '*', devices: '*' },
      { id: 'no-ops-status', effect: 'deny', roles: ['operator'], opcodes: ['EXEC_GET_STATUS'], devices: '*' },
    ] }));
    const denied = await world.deliver(world.command('EXEC_GET_STATUS', { name: 'olga', role: 'operator' }));
    assert.equal(denied?.error?.code, 'POLICY_BUNDLE_DENIED');
    assert.match(denied?.error?.message ?? '', /no-ops-status/);
    assert.equal(world.kernelCalls, 0, 'never reached the kernel');
    assert.notEqual((await world.deliver(world.command('EXEC_GET_STATUS', { name: 'ada', role: 'admin' })))?.status, 'rejected');
    assert.equal(world.kernelCalls, 1);
  });

  it('a newer bundle replaces the held one: what it allows runs', async () => {
    const world = await connectedWorld();
    await world.push(world.bundle(1));
    assert.equal((await world.deliver(world.command('EXEC_LOCK_SCREEN')))?.error?.code, 'POLICY_BUNDLE_DENIED');
    // Revision 2 narrows the deny to another prefix.
    const bundle = cutPolicyBundle({
      policy: parsePolicy({ version: 1, revision: 2, rules: [{ id: 'admin-all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' }] }),
      version: 2, device: { id: deviceId }, issuedAtMs: world.time.nowMs(),
    });
    await world.push(signPolicyBundle({ bundle, kid: 'cp:test', seed: world.keys.commands, provider }));
    assert.notEqual((await world.deliver(world.command('EXEC_LOCK_SCREEN')))?.status, 'rejected');
    assert.equal(world.kernelCalls, 1);
  });

  it('keeps the bundle on disk: after a restart, with the control plane down (no bundle pushed), the bundle still refuses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-bundle-'));
    try {
      const world = await connectedWorld(createFilePolicyBundleStore(dir));
      await world.push(world.bundle(9));
      const saved = JSON.parse(await readFile(join(dir, policyBundleFileName), 'utf8')) as SignedPolicyBundle;
      assert.equal(saved.bundle.version, 9);
      assert.equal((await stat(join(dir, policyBundleFileName))).mode & 0o777, 0o600);
      await world.core.stop();

      // A new process over the same directory; the gateway it reaches has no bundle to push.
      await world.startAgent();
      world.connect();
      const denied = await world.deliver(world.command('EXEC_LOCK_SCREEN'));
      assert.equal(denied?.error?.code, 'POLICY_BUNDLE_DENIED');
      assert.equal(world.kernelCalls, 0);
      // And a lower version offered after the restart is still refused: the held version survived too.
      await world.push(world.bundle(8));
      assert.equal(world.bodies('POLICY_BUNDLE_REPORT').at(-1)?.error?.code, 'POLICY_BUNDLE_VERSION_STALE');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a tampered file on disk is not enforced (its signature fails), and is reported in the log, not a crash', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-bundle-'));
    try {
      const world = await connectedWorld(createFilePolicyBundleStore(dir));
      await world.push(world.bundle(2));
      await world.core.stop();
      const path = join(dir, policyBundleFileName);
      const saved = JSON.parse(await readFile(path, 'utf8')) as SignedPolicyBundle;
      await writeFile(path, JSON.stringify({ ...saved, bundle: { ...saved.bundle, version: 99 } }));
      await world.startAgent();
      world.connect();
      // Not the tampered version 99: a genuine version 3 is taken.
      await world.push(world.bundle(3));
      assert.equal(world.bodies('POLICY_BUNDLE_REPORT').at(-1)?.status, 'accepted');
      await writeFile(path, '{ not json');
      await world.core.stop();
      await world.startAgent();
      world.connect();
      assert.equal(world.core.isReady, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a command journaled before a bundle arrived is checked again when it starts', async () => {
    const world = await connectedWorld();
    await world.push(world.bundle(1));
    // A journaled command the previous run left `received`: recovery checks it against the bundle.
    const command = world.command('EXEC_LOCK_SCREEN');
    await world.journal.received(command);
    await world.core.stop();
    await world.startAgent();
    assert.equal(world.kernelCalls, 0);
    assert.equal(world.journal.get(command.id)?.result?.error?.code, 'POLICY_BUNDLE_DENIED');
  });
});

/** A store that counts its saves (by version) and, while `hold` is set, keeps a save from finishing until released. */
function countingStore(): PolicyBundleStore & { saves: number[]; hold(): void; release(): void } {
  const inner = createMemoryPolicyBundleStore();
  let gate: { promise: Promise<void>; resolve: () => void } | undefined;
  return {
    saves: [],
    load: () => inner.load(),
    async save(signed, text) {
      this.saves.push(signed.bundle.version);
      if (gate !== undefined) await gate.promise;
      return inner.save(signed, text);
    },
    hold() {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => { resolve = done; });
      gate = { promise, resolve };
    },
    release() {
      gate?.resolve();
      gate = undefined;
    },
  };
}

describe('a gateway that floods the agent with policy bundles', () => {
  it('the held bundle pushed 1,000 more times is saved once, at most one push waits, and a newer bundle after the flood is applied', async () => {
    const store = countingStore();
    const world = await connectedWorld(store);
    const held = world.bundle(3);
    await world.push(held);
    assert.deepEqual(store.saves, [3]);
    let waitingMax = 0;
    // 50 frames per socket read, a macrotask turn between reads (as the review's replay did).
    for (let batch = 0; batch < 20; batch += 1) {
      for (let i = 0; i < 50; i += 1) world.gateway.sendPolicyBundle({ signed: held }, world.time.nowMs());
      world.pump();
      waitingMax = Math.max(waitingMax, world.core.policyBundlesWaiting);
      await settle();
    }
    await world.core.idle();
    assert.deepEqual(store.saves, [3], 'the held bundle is not written again');
    assert.ok(waitingMax <= 1, `at most one bundle waits (saw ${waitingMax})`);
    const flood = world.events.filter((e) => e.kind === 'policy_bundle').slice(1);
    assert.equal(flood.length, 1_000, 'each push is either checked or dropped, never lost silently');
    const checked = flood.filter((e) => e.kind === 'policy_bundle' && e.unchanged === true);
    const dropped = flood.filter((e) => e.kind === 'policy_bundle' && e.dropped === true);
    assert.equal(checked.length + dropped.length, 1_000);
    assert.ok(checked.length >= 1 && checked.length <= 20 * 2, `about one check per read (${checked.length})`);
    assert.ok(dropped.every((e) => e.kind === 'policy_bundle' && e.status === 'refused' && e.code === 'POLICY_BUNDLE_VERSION_STALE'));
    assert.equal(world.core.policyBundlesDropped, dropped.length);
    // A checked replay is acknowledged as before (the gateway records the held version from it); a dropped one gets no report.
    const reports = world.bodies('POLICY_BUNDLE_REPORT');
    assert.equal(reports.length, 1 + checked.length);
    assert.ok(reports.every((report) => report.status === 'accepted' && report.version === 3 && report.held_version === 3));
    // A newer bundle after the flood is taken, saved and enforced.
    await world.push(world.bundle(4, { extraRules: [{ id: 'no-status-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_GET_STATUS'], devices: { ids: ['lab-*'] } }] }));
    assert.deepEqual(store.saves, [3, 4]);
    assert.deepEqual(world.bodies('POLICY_BUNDLE_REPORT').at(-1), { version: 4, status: 'accepted', held_version: 4 });
    assert.equal((await world.deliver(world.command('EXEC_GET_STATUS')))?.error?.code, 'POLICY_BUNDLE_DENIED');
  });

  it('while a push is being checked, one waits: a newer one takes its place, an older or equal one is dropped (typed, no report)', async () => {
    const store = countingStore();
    const world = await connectedWorld(store);
    await world.push(world.bundle(3));
    store.hold();
    const four = world.bundle(4);
    world.gateway.sendPolicyBundle({ signed: four }, world.time.nowMs());
    world.pump();
    await settle();
    assert.deepEqual(store.saves, [3, 4], 'version 4 is being saved');
    assert.equal(world.core.policyBundlesWaiting, 0);
    const six = world.bundle(6);
    const offers = [...Array.from({ length: 100 }, () => four), six, world.bundle(5), six];
    for (const signed of offers) {
      world.gateway.sendPolicyBundle({ signed }, world.time.nowMs());
      world.pump();
      assert.ok(world.core.policyBundlesWaiting <= 1);
    }
    assert.equal(world.core.policyBundlesWaiting, 1);
    // 99 replays of 4 behind the first, the waiting 4 displaced by 6, then 5 and the second 6.
    assert.equal(world.core.policyBundlesDropped, 102);
    store.release();
    await settle();
    await world.core.idle();
    assert.equal(world.core.policyBundlesWaiting, 0);
    assert.deepEqual(store.saves, [3, 4, 6]);
    const reports = world.bodies('POLICY_BUNDLE_REPORT').map((report) => [report.version, report.status, report.held_version]);
    assert.deepEqual(reports, [[3, 'accepted', 3], [4, 'accepted', 4], [6, 'accepted', 6]]);
    const droppedVersions = world.events.flatMap((e) => (e.kind === 'policy_bundle' && e.dropped === true ? [e.version] : []));
    assert.deepEqual(droppedVersions, [...Array.from({ length: 100 }, () => 4), 5, 6]);
  });

  it('after a restart, the saved bundle pushed again at AUTH is acknowledged without being written again', async () => {
    const store = countingStore();
    const world = await connectedWorld(store);
    const held = world.bundle(3);
    await world.push(held);
    await world.core.stop();
    await world.startAgent();
    world.connect();
    // The gateway sends the stored bundle after every AUTH: the same one, reloaded from the store by the new process.
    await world.push(JSON.parse(JSON.stringify(held)) as SignedPolicyBundle);
    assert.deepEqual(store.saves, [3]);
    assert.deepEqual(world.bodies('POLICY_BUNDLE_REPORT'), [{ version: 3, status: 'accepted', held_version: 3 }]);
    assert.equal((await world.deliver(world.command('EXEC_LOCK_SCREEN')))?.error?.code, 'POLICY_BUNDLE_DENIED');
  });

  it('the same version with other content is handled as before: issued later or at the same time, taken and saved; issued earlier, refused as stale', async () => {
    const store = countingStore();
    const world = await connectedWorld(store);
    const first = world.bundle(3);
    await world.time.runUntil(world.time.nowMs() + 1_000, settle);
    const resigned = world.bundle(3, { extraRules: [{ id: 'no-status-lab', effect: 'deny', roles: '*', opcodes: ['EXEC_GET_STATUS'], devices: { ids: ['lab-*'] } }] });
    await world.push(resigned);
    await world.push(first);
    await world.push(resigned);
    assert.deepEqual(store.saves, [3]);
    const reports = world.bodies('POLICY_BUNDLE_REPORT').map((report) => [report.version, report.status, report.error?.code]);
    assert.deepEqual(reports, [[3, 'accepted', undefined], [3, 'refused', 'POLICY_BUNDLE_VERSION_STALE'], [3, 'accepted', undefined]]);
    // Same version, same issue time, other content (verifyPolicyBundle's rule: not issued earlier): taken and written.
    const sameTime = world.bundle(3);
    assert.equal(sameTime.bundle.issued_at, resigned.bundle.issued_at);
    await world.push(sameTime);
    assert.deepEqual(store.saves, [3, 3]);
    assert.notEqual((await world.deliver(world.command('EXEC_GET_STATUS')))?.status, 'rejected', 'the re-signed content is enforced');
  });
});
