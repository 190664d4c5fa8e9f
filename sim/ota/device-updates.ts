import { createHash } from 'node:crypto';
import { isTerminal } from '../../core/protocol/state-machine.js';
import { executionTable } from '../../core/ota/execution-machine.js';
import type { Clock, Ed25519Provider } from '../../core/ports/ports.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { SeededRandom } from '../../core/random/prng.js';
import type { VirtualTime } from '../../core/time/virtual-time.js';
import type { TufCrypto } from '../../core/tuf/crypto-port.js';
import type { AgentLogger } from '../../agent/agent-core.js';
import type { MemoryStagingStore } from '../../agent/ota/memory-staging-store.js';
import { UpdateRunner, type UpdateRunnerOptions } from '../../agent/ota/update-runner.js';
import { memoryUpdateJournal, type UpdateJournal, type UpdateJournalEntry } from '../../agent/ota/update-journal.js';
import { memoryTufStore } from '../../agent/tuf/driver.js';
import type { KernelBridge } from '../../kernel/bridge/kernel-bridge.js';
import type { ServiceSigner } from '../../server/materials/materials.js';
import type { ScenarioOta } from '../scenario.js';
import type { OtaObserver } from './ota-observer.js';
import type { SimFetch } from './sim-fetch.js';

type Notice = MessageBody<'OTA_NOTICE'>;
type Report = MessageBody<'OTA_REPORT'>;

export type BrickMode = NonNullable<ScenarioOta['bricks']>['mode'];

/**
 * A simulated device's update path: the real agent's UpdateRunner (agent/ota/update-runner.ts)
 * on the simulator's ports: the TUF client and the resumable download through SimFetch (the
 * simulated control plane's own TUF repository and blob store, in process, on virtual time), the
 * artifact staged in memory where the device's mock kernel reads it for the real STAGE and
 * COMMIT, the journal in memory, time from the run's virtual clock (skewed as the device's).
 * What the simulator adds is the device's fate and pace: a bricked device's health probe fails,
 * or its reboot never ends (silent); each step and the reboot take a seeded step delay; a notice
 * may come without an artifact URL (the TUF targets route); the agent may crash once mid-update
 * at a kernel call, and a new runner then recovers from the journal the crash left (as runAgent
 * calls `recover()` at start). The observer is fed from the reports the runner sends, the bytes
 * it staged and the kernel calls it made, for the OTA checkers; nothing here steers the runner.
 *
 * A crash is modelled as the process stopping at its next I/O: every port the old runner holds
 * (journal, kernel, fetch, send, pace) answers nothing once its incarnation is over, so what it
 * had in flight never resumes, and only the journal and the kernel (a file and a device) carry
 * over to the next runner.
 */
export interface DeviceUpdatesOptions {
  readonly deviceId: string;
  readonly ota: ScenarioOta;
  readonly time: VirtualTime;
  /** The device's clock (the agent's skew). */
  readonly clock: Clock;
  readonly random: SeededRandom;
  /** The device's kernel bridge itself (its OTA calls are no operator command's, so not counted as one). */
  readonly kernel: KernelBridge;
  readonly staging: MemoryStagingStore;
  readonly fetch: SimFetch;
  /** One per run: its key cache means no device parses a key again. */
  readonly tufCrypto: TufCrypto;
  readonly commandSigner: ServiceSigner;
  readonly provider: Ed25519Provider;
  /** Asked once per execution the device takes. */
  readonly bricks: () => BrickMode | null;
  /** Asked once per execution: does its notice come without an artifact URL? */
  readonly targetsRoute: () => boolean;
  /** Asked once per execution (with its brick): where the agent crashes in it, or null. */
  readonly crashes: (brick: BrickMode | null) => CrashPlan | null;
  /** Crashes the device's agent process (SimAgent.crash), back after downMs. */
  readonly crashAgent: (downMs: number) => void;
  readonly send: (report: Report) => boolean;
  /** The agent core's policy bundle check of the rollout's STAGE and COMMIT (UpdateRunnerOptions.checkCommand). */
  readonly checkCommand?: UpdateRunnerOptions['checkCommand'];
  readonly observer: OtaObserver;
  readonly trace: (kind: string, detail: string) => void;
}

/** Where the simulated devices find the control plane's OTA routes (SimFetch answers any host in process). */
export const simControlPlaneUrl = 'https://cp.sim.invalid';
/** What a simulated device runs before the update: the mock kernel's factory image, so a bricked update has a version to roll back to. */
export const simInstalledVersion = '1.0.0';
/** Where a device's runner stages artifacts: keys in its memory staging store, no folder. */
const targetsDir = '/sim/ota/targets';
/** The agent version simulated devices report to the release's minimum-agent-version check. */
const simAgentVersion = '0.1.0';
/** A silent logger: the trace and the observer are the simulator's record. */
const quiet: AgentLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The agent's crash in one execution: at which kernel call, just before or just after it reaches the kernel, and for how long it stays down. */
export interface CrashPlan {
  readonly intent: 'stage' | 'commit' | 'rollback';
  readonly beforeCall: boolean;
  readonly downMs: number;
}

/** What a taken execution holds for this device: its fate, its route and its crash plan. */
interface ExecutionFate {
  readonly brick: BrickMode | null;
  readonly targetsRoute: boolean;
  /** Null once spent, or when there is none. */
  crash: CrashPlan | null;
}

/** Never settles: what an I/O of a dead process waits for. */
const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

export class DeviceUpdates {
  readonly #o: DeviceUpdatesOptions;
  #runner: UpdateRunner;
  /** The agent process the runner belongs to; a crash ends it, and the old runner's ports answer nothing. */
  #incarnation = 0;
  /** The journal in memory, shared by the incarnations as the file is. */
  readonly #journal = memoryUpdateJournal({ keepHistory: false });
  /** Set when the crash is due right after the kernel call in flight returns. */
  #crashAfterCall: CrashPlan | undefined;
  /** While the crashed runner is not yet replaced: the latest notice that came meanwhile (the liveness phase may boot the agent early), given to the next runner. */
  #down: { notice: Notice | undefined } | undefined;
  /** The fate of each execution this device took (one or two per run). */
  readonly #fates = new Map<string, ExecutionFate>();
  /** Report ids already observed: the runner sends its reports again with each repeated notice. */
  readonly #seen = new Set<string>();

  constructor(options: DeviceUpdatesOptions) {
    this.#o = options;
    this.#runner = this.#newRunner();
  }

  /** An OTA_NOTICE from the agent core. */
  onNotice(notice: Notice): void {
    if (this.#down !== undefined) {
      this.#down.notice = notice;
      return;
    }
    const current = this.#runner.current;
    const idle = current === null || isTerminal(executionTable, current.state);
    if (!notice.cancel && current?.executionId !== notice.execution_id && idle && !this.#fates.has(notice.execution_id)) this.#take(notice);
    if (notice.cancel) this.#o.trace('ota.cancel', `${this.#o.deviceId} ${notice.execution_id}`);
    if (this.#fates.get(notice.execution_id)?.targetsRoute === true && notice.artifact_url !== undefined) {
      const { artifact_url: _dropped, ...withoutUrl } = notice;
      this.#runner.onNotice(withoutUrl);
      return;
    }
    this.#runner.onNotice(notice);
  }

  /** The journal's execution and the kernel's status, for the end-of-run check that no update is half applied. */
  get current(): UpdateJournalEntry | null {
    return this.#runner.current;
  }

  #newRunner(): UpdateRunner {
    const { ota, time } = this.#o;
    const incarnation = this.#incarnation;
    const alive = () => incarnation === this.#incarnation;
    const fetch = this.#o.fetch;
    return new UpdateRunner({
      deviceId: this.#o.deviceId, platform: 'linux-x64', agentVersion: simAgentVersion,
      resolveDirectorKey: (kid) => (kid === this.#o.commandSigner.kid ? this.#o.commandSigner.publicKey : undefined),
      kernel: this.#kernelOf(alive), journal: this.#journalOf(alive),
      source: {
        metadataBaseUrl: `${simControlPlaneUrl}/v1/tuf/metadata/`, targetBaseUrl: `${simControlPlaneUrl}/v1/tuf/targets/`,
        fetcher: { fetch: (url, limits, what) => (alive() ? fetch.fetch(url, limits, what) : never()) },
        metadata: memoryTufStore(), targets: this.#o.staging.tufView(targetsDir), targetsDir, staging: this.#o.staging,
        download: {
          scheduler: time, fetcher: { get: (url, headers, signal) => (alive() ? fetch.get(url, headers, signal) : never()) }, retryDelayMs: ota.device.retryDelayMs,
          limits: { idleTimeoutMs: 30_000, totalTimeoutMs: ota.executionTimeoutMs, attemptsWithoutProgressMax: ota.device.attemptsMax },
        },
      },
      tufCrypto: this.#o.tufCrypto, ed25519: this.#o.provider, clock: this.#o.clock, random: this.#o.random,
      send: (report) => alive() && this.#sent(report),
      healthProbe: async () => this.#fateOf(this.#runner.current?.executionId)?.brick == null,
      reboot: () => (alive() ? this.#reboot() : never()),
      pace: () => (alive() ? this.#delay() : never()),
      // The simulator's links lose frames on a live session: a lost report goes again before its step times out.
      reportResend: { scheduler: time, intervalMs: Math.max(1_000, Math.floor(ota.stepTimeoutMs / 3)), resendsMax: 4 },
      ...(this.#o.checkCommand === undefined ? {} : { checkCommand: this.#o.checkCommand }),
      logger: quiet,
    });
  }

  /** The journal, gated by the incarnation; a save naming the planned kernel call starts the crash. */
  #journalOf(alive: () => boolean): UpdateJournal {
    return {
      load: () => (alive() ? this.#journal.load() : never()),
      save: async (state) => {
        if (!alive()) return never();
        await this.#journal.save(state);
        const entry = state.current;
        const fate = entry === null ? undefined : this.#fates.get(entry.executionId);
        if (entry === null || fate?.crash == null || entry.intent !== fate.crash.intent) return;
        const plan = fate.crash;
        fate.crash = null;
        // Before: the intent is journaled and the call never reaches the kernel. After: the call is made, and the process dies before it journals the outcome.
        if (plan.beforeCall) this.#crash(plan);
        else this.#crashAfterCall = plan;
      },
    };
  }

  /** The kernel as the runner's port: gated by the incarnation; the crash planned after a call comes when it returns. */
  #kernelOf(alive: () => boolean): KernelBridge {
    const kernel = this.#o.kernel;
    // Only the calls that change the kernel end a planned "after" crash (a rollback reads the status first).
    const gated = <A extends unknown[], R>(call: (...args: A) => Promise<R>, changes = false) => async (...args: A): Promise<R> => {
      if (!alive()) return never();
      const result = await call(...args);
      const plan = this.#crashAfterCall;
      if (changes && plan !== undefined) {
        this.#crashAfterCall = undefined;
        this.#crash(plan);
      }
      return result;
    };
    return {
      ...kernel,
      stageUpdate: gated((args, auth) => kernel.stageUpdate(args, auth), true),
      commitUpdate: gated((version, auth, options) => kernel.commitUpdate(version, auth, options), true),
      rollbackUpdate: gated((auth) => kernel.rollbackUpdate(auth), true),
      getStatus: gated((auth) => kernel.getStatus(auth)),
      ...(kernel.confirmUpdate === undefined ? {} : { confirmUpdate: gated((version: string, auth?: Parameters<NonNullable<KernelBridge['confirmUpdate']>>[1]) => kernel.confirmUpdate!(version, auth)) }),
    };
  }

  /** The agent process dies mid-update; after a seeded down time a new runner recovers from the journal. */
  #crash(plan: CrashPlan): void {
    const { deviceId, observer, trace, time } = this.#o;
    const { intent, beforeCall, downMs } = plan;
    this.#incarnation += 1;
    observer.crashed(deviceId, { intent, beforeCall });
    trace('ota.crash', `${deviceId} at ${intent} ${beforeCall ? 'before' : 'after'} the call, down ${downMs}`);
    this.#o.crashAgent(downMs);
    this.#down = { notice: undefined };
    time.schedule(downMs, () => {
      const held = this.#down?.notice;
      this.#down = undefined;
      this.#runner = this.#newRunner();
      trace('ota.recover', deviceId);
      observer.recovered(deviceId);
      const runner = this.#runner;
      void runner.recover().then(() => { if (held !== undefined && runner === this.#runner) this.onNotice(held); });
    });
  }

  #take(notice: Notice): void {
    const brick = this.#o.bricks();
    const targetsRoute = this.#o.targetsRoute();
    const crash = this.#o.crashes(brick);
    // Bounded: a device takes one execution at a time, and only the latest one's fate matters.
    if (this.#fates.size >= 8) this.#fates.clear();
    this.#fates.set(notice.execution_id, { brick, targetsRoute, crash });
    this.#seen.clear();
    const length = Number((notice.kernel_commands.stage.args as { size_bytes?: unknown }).size_bytes ?? 0);
    this.#o.observer.taken(this.#o.deviceId, { executionId: notice.execution_id, wave: notice.wave, brick, length, targetsRoute });
    const extras = [brick === null ? '' : ` brick ${brick}`, targetsRoute ? ' targets-route' : '', crash === null ? '' : ` crash ${crash.intent} ${crash.beforeCall ? 'before' : 'after'}`].join('');
    this.#o.trace('ota.take', `${this.#o.deviceId} ${notice.execution_id} wave ${notice.wave}${extras}`);
  }

  #fateOf(executionId: string | undefined): ExecutionFate | undefined {
    return executionId === undefined ? undefined : this.#fates.get(executionId);
  }

  /** A step's seeded delay on virtual time. */
  #delay(): Promise<void> {
    const { stepDelayMsMin, stepDelayMsMax } = this.#o.ota.device;
    return new Promise<void>((resolve) => { this.#o.time.schedule(this.#o.random.intBetween(stepDelayMsMin, stepDelayMsMax), resolve); });
  }

  /** The reboot takes a seeded step delay; a silent brick never comes back from it. */
  #reboot(): Promise<void> {
    if (this.#fateOf(this.#runner.current?.executionId)?.brick === 'silent') {
      this.#o.observer.ended(this.#o.deviceId, 'silent');
      return never();
    }
    return this.#delay();
  }

  #sent(report: Report): boolean {
    if (!this.#seen.has(report.report_id)) {
      this.#seen.add(report.report_id);
      this.#observe(report);
    }
    return this.#o.send(report);
  }

  #observe(report: Report): void {
    const { observer, deviceId } = this.#o;
    observer.reported(deviceId, report.event);
    this.#o.trace('ota.report', `${deviceId} ${report.event}`);
    switch (report.event) {
      case 'refuse': observer.refused(deviceId, report.execution_id, report.error?.message ?? ''); break;
      case 'download_complete': observer.downloaded(deviceId, this.#staged()); break;
      case 'commit': observer.committed(deviceId); break;
      case 'version_report': {
        observer.healthReported(deviceId, report.healthy === true);
        if (report.healthy === true) observer.ended(deviceId, 'done');
        break;
      }
      case 'canceled': observer.ended(deviceId, 'canceled'); break;
      case 'download_fail': case 'verify_fail': case 'stage_fail': case 'commit_fail': case 'rollback_complete': case 'rollback_fail':
        observer.ended(deviceId, 'done');
        break;
      default: break;
    }
  }

  /** What the runner staged, hashed here, against the digest the control plane signed into STAGE. */
  #staged(): { sha256: string; matched: boolean } {
    const entry = this.#runner.current;
    const bytes = entry?.approved === null || entry === null ? undefined : this.#o.staging.read(entry.approved.file);
    const sha256 = createHash('sha256').update(bytes ?? new Uint8Array(0)).digest('hex');
    const signed = (entry?.notice.kernel_commands.stage.args as { sha256?: unknown } | undefined)?.sha256;
    this.#o.trace('ota.downloaded', `${this.#o.deviceId} ${sha256.slice(0, 16)} ${sha256 === signed ? 'match' : 'mismatch'}`);
    return { sha256, matched: bytes !== undefined && sha256 === signed };
  }
}
