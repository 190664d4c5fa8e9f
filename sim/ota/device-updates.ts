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
import { UpdateRunner } from '../../agent/ota/update-runner.js';
import { memoryUpdateJournal } from '../../agent/ota/update-journal.js';
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
 * What the simulator adds is only the device's fate: a bricked device's health probe fails, or
 * its reboot never ends (silent); a reboot takes a seeded step delay. The observer is fed from
 * the reports the runner sends and the bytes it staged, for the OTA checkers; nothing here
 * steers the runner.
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
  readonly send: (report: Report) => boolean;
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

export class DeviceUpdates {
  readonly #o: DeviceUpdatesOptions;
  readonly #runner: UpdateRunner;
  /** The bricking of each execution this device took (one or two per run). */
  readonly #bricks = new Map<string, BrickMode | null>();
  /** Report ids already observed: the runner sends its reports again with each repeated notice. */
  readonly #seen = new Set<string>();

  constructor(options: DeviceUpdatesOptions) {
    this.#o = options;
    const { ota, time } = options;
    this.#runner = new UpdateRunner({
      deviceId: options.deviceId, platform: 'linux-x64', agentVersion: simAgentVersion,
      resolveDirectorKey: (kid) => (kid === options.commandSigner.kid ? options.commandSigner.publicKey : undefined),
      kernel: options.kernel, journal: memoryUpdateJournal({ keepHistory: false }),
      source: {
        metadataBaseUrl: `${simControlPlaneUrl}/v1/tuf/metadata/`, targetBaseUrl: `${simControlPlaneUrl}/v1/tuf/targets/`,
        fetcher: options.fetch, metadata: memoryTufStore(), targets: options.staging.tufView(targetsDir), targetsDir, staging: options.staging,
        download: {
          scheduler: time, fetcher: options.fetch, retryDelayMs: ota.device.retryDelayMs,
          limits: { idleTimeoutMs: 30_000, totalTimeoutMs: ota.executionTimeoutMs, attemptsMax: ota.device.attemptsMax },
        },
      },
      tufCrypto: options.tufCrypto, ed25519: options.provider, clock: options.clock, random: options.random,
      send: (report) => this.#sent(report),
      healthProbe: async () => this.#brickOf(this.#runner.current?.executionId) === null,
      reboot: () => this.#reboot(),
      logger: quiet,
    });
  }

  /** An OTA_NOTICE from the agent core. */
  onNotice(notice: Notice): void {
    const current = this.#runner.current;
    const idle = current === null || isTerminal(executionTable, current.state);
    if (!notice.cancel && current?.executionId !== notice.execution_id && idle && !this.#bricks.has(notice.execution_id)) this.#take(notice);
    if (notice.cancel) this.#o.trace('ota.cancel', `${this.#o.deviceId} ${notice.execution_id}`);
    this.#runner.onNotice(notice);
  }

  #take(notice: Notice): void {
    const brick = this.#o.bricks();
    // Bounded: a device takes one execution at a time, and only the latest one's fate matters.
    if (this.#bricks.size >= 8) this.#bricks.clear();
    this.#bricks.set(notice.execution_id, brick);
    this.#seen.clear();
    const length = Number((notice.kernel_commands.stage.args as { size_bytes?: unknown }).size_bytes ?? 0);
    this.#o.observer.taken(this.#o.deviceId, { executionId: notice.execution_id, wave: notice.wave, brick, length });
    this.#o.trace('ota.take', `${this.#o.deviceId} ${notice.execution_id} wave ${notice.wave}${brick === null ? '' : ` brick ${brick}`}`);
  }

  #brickOf(executionId: string | undefined): BrickMode | null {
    return executionId === undefined ? null : this.#bricks.get(executionId) ?? null;
  }

  /** The reboot takes a seeded step delay; a silent brick never comes back from it. */
  #reboot(): Promise<void> {
    if (this.#brickOf(this.#runner.current?.executionId) === 'silent') {
      this.#o.observer.ended(this.#o.deviceId, 'silent');
      return new Promise<void>(() => undefined);
    }
    const { stepDelayMsMin, stepDelayMsMax } = this.#o.ota.device;
    return new Promise<void>((resolve) => { this.#o.time.schedule(this.#o.random.intBetween(stepDelayMsMin, stepDelayMsMax), resolve); });
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
