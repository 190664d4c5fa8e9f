import { createHook } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { base64urlFromBytes, hexFromBytes } from '../core/crypto/bytes.js';
import { SdcError } from '../core/errors/index.js';
import { envelopeMacAlg } from '../core/protocol/envelope.js';
import { telemetryBatchLimits } from '../core/protocol/limits.js';
import type { MessageBody } from '../core/protocol/messages/catalog.js';
import { AgentConnection } from '../core/protocol/session/agent-connection.js';
import { deviceKid, gatewayKid } from '../core/protocol/session/gateway-connection.js';
import { createNodeEd25519Provider } from '../runtime/ed25519-node.js';
import { createNodeSessionKeyCrypto } from '../runtime/session-crypto-node.js';
import { systemClock, systemRandom, systemScheduler } from '../runtime/system.js';
import { createControlPlane, type ControlPlane } from '../server/control-plane/index.js';
import { gatewayTelemetryBatchEntries, gatewayTelemetryFramesPerEntry } from '../server/deployment/deployment.js';
import { createGatewayCore, type ConnectionHandle, type GatewayCore } from '../server/gateway/gateway-core.js';
import { sessionTasksMax } from '../server/gateway/device-session.js';
import { initDeployment, type DeploymentMaterials } from '../server/materials/materials.js';
import { ServiceMetrics } from '../server/observability/metrics.js';
import { openStores, type Stores } from '../server/stores/index.js';
import type { ExecuteResult, SqlDatabase, SqlExecutor, SqlValue } from '../server/stores/sql/sql-port.js';
import { ingestBenchDefaults, ingestBenchLimits } from './ingest-limits.js';
import { timestampScrape } from './report-scrapes.js';
import { startMetricsSeries, type MetricsSeries } from './metrics-series.js';
import { withOneByOneBatches } from '../server/stores/sql/sql-batch.js';

/**
 * Telemetry ingest (issue 17): signed-session telemetry from many device connections through
 * the whole path a deployment runs (the gateway core: session authentication, the prev_hash
 * chain, batched bus appends; the control plane's telemetry consumer: decode, device status,
 * risk score, the SQL insert), on the embedded stores or on Redis + MySQL. The TLS/WebSocket
 * transport is left out (connections are in-memory, as in the simulator): it costs the same per
 * frame with either authentication and would measure the socket stack, not the ingest path.
 *
 * Closed loop: at most `windowFrames` samples are in flight (sent, not yet stored), so what is
 * reported is a rate the pipeline sustains, with the backlog bounded by construction; the
 * backlog at the start and the end of the measured window is reported to show it did not grow.
 * Two modes in the same run: `session-mac` (ADR 0004, what agents do now) and `ed25519`
 * (agents that sign every frame, verified by the gateway and again by the writer), beside the
 * raw node:crypto Ed25519 verify rate of the same process.
 *
 * `samplesPerFrame` (decision 0004, "Batches"): the session-mac mode is run once per K given,
 * with K samples per frame (TELEMETRY_BATCH when K > 1, as an agent configured to batch sends
 * them); each row says its K, its samples/s and its frames/s. The ed25519 mode has no batches
 * (a batch exists only under the session MAC): it runs at K = 1 only.
 */

export type IngestMode = 'session-mac' | 'ed25519';

export interface IngestBenchOptions {
  connections: number;
  /** Wall time measured per mode, after the warm-up. */
  durationMs: number;
  warmupMs?: number;
  /** Samples sent and not yet stored, at most. */
  windowFrames?: number;
  modes?: readonly IngestMode[];
  redisUrl?: string;
  mysqlUrl?: string;
  onProgress?: (line: string) => void;
  /** The services' /metrics every this many ms over each measured window (0: only at its start and end). */
  scrapeIntervalMs?: number;
  /** Samples per frame, one session-mac run each (default [1], one TELEMETRY per sample); ed25519 runs at 1 only. */
  samplesPerFrame?: readonly number[];
}

export interface IngestBenchRow {
  mode: IngestMode;
  stores: string;
  connections: number;
  /** Samples per frame in this row: 1 is one TELEMETRY per sample (today's agents); above 1, TELEMETRY_BATCH frames of exactly that many. */
  samples_per_frame: number;
  samples_stored: number;
  elapsed_ms: number;
  samples_per_s: number;
  /** Frames whose samples were stored, per second: samples_per_s / samples_per_frame (every frame carries exactly samples_per_frame). */
  frames_per_s: number;
  /** samples_per_s / the raw node:crypto Ed25519 verify rate of the same run: per SAMPLE, so at samples_per_frame > 1 it is not a per-frame figure. */
  ratio_to_ed25519_verify: number;
  /** CPU of the whole process per sample: the simulated agents, the gateway and the control plane. */
  cpu_us_per_sample: number;
  /** The same without the agents' share (the process's CPU while they make, MAC or sign and hash each frame): the services' cost. */
  service_cpu_us_per_sample: number;
  backlog_at_start: number;
  backlog_at_end: number;
  /** Statements the control plane sent to SQL in the measured window, per sample stored (the writer's, recordSeen's, key reads, retention). */
  sql_statements_per_sample: number;
  /** Rows per telemetry INSERT in the measured window: how well the writer's group commit batches. */
  rows_per_telemetry_insert: number;
  /** Samples in flight at most in this run: the asked window, or less with few connections (sessionInFlightMax each). */
  window_frames: number;
  /**
   * Promises made in the measured window per sample stored (the agents' included), only with
   * SDC_BENCH_COUNT_PROMISES=1: an async hook counts them, which costs CPU, so the other figures
   * of such a run are not comparable with a run without it.
   */
  promises_per_sample?: number;
}

export interface IngestBenchOutcome {
  rows: IngestBenchRow[];
  ed25519VerifyPerS: number;
  /**
   * Per mode, the services' /metrics (control plane and gateway, one registry) at the start and
   * the end of the measured window, each sample stamped with its scrape time: the report draws
   * the ingest rate from them (bench/report-scrapes.ts).
   */
  scrapes: Array<{ mode: IngestMode; samplesPerFrame: number; start: string; end: string }>;
  /**
   * Per mode, the same registry every `scrapeIntervalMs` over the measured window, from the start
   * scrape to the end one (bench/metrics-series.ts): `metrics-MODE-series.jsonl` with --out.
   */
  series: Array<{ mode: IngestMode; samplesPerFrame: number; series: MetricsSeries }>;
}

interface ModeOutcome {
  row: IngestBenchRow;
  scrapes?: { start: string; end: string };
  series: MetricsSeries;
}

/** The series' first and last scrapes, stamped, when both succeeded; a failing collector leaves the run without the pair, not failed. */
function seriesEnds(series: MetricsSeries): { start: string; end: string } | undefined {
  const first = series.entries[0];
  const last = series.entries.at(-1);
  if (first?.text === undefined || last?.text === undefined || series.entries.length < 2) return undefined;
  return { start: timestampScrape(first.text, first.atMs), end: timestampScrape(last.text, last.atMs) };
}

export { ingestBenchDefaults, ingestBenchLimits } from './ingest-limits.js';

const sampleMetrics: MessageBody<'TELEMETRY'>['metrics'] = { cpu_pct: 12.5, mem_pct: 40.25, disk_pct: 61, net_rx_bytes_per_sec: 18_000, net_tx_bytes_per_sec: 4_200, process_count: 212 };
/** A pump with a full window looks again after this long even if no INSERT said samples were stored. */
const windowWaitMs = 20;
/** How long to wait for every session to be ready before giving up. */
const sessionsReadyTimeoutMs = 60_000;
/** The bench devices' certificate lifetime as recorded in their rows (nothing checks it during a run). */
const deviceCertificateValidityMs = 30 * 24 * 3600_000;
const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
/** One provider for the bench's agents, gateway and baseline; its key cache holds every bench device's keys. */
const provider = createNodeEd25519Provider({ keyCacheEntriesMax: 2 * ingestBenchLimits.connectionsMax + 16 });
const sessionCrypto = createNodeSessionKeyCrypto();

/** Promises made so far, counted only with SDC_BENCH_COUNT_PROMISES=1 (an async hook, enabled for the whole run). */
const promiseCount = { made: 0 };
if (process.env.SDC_BENCH_COUNT_PROMISES === '1') createHook({ init: (_id, type) => { if (type === 'PROMISE') promiseCount.made += 1; } }).enable();

/** What the control plane's SQL did: every statement, and the writer's telemetry INSERTs with the rows they stored. */
interface SqlTally {
  statements: number;
  telemetryInserts: number;
  rowsStored: number;
  /** Called after each telemetry INSERT is counted (the pump waits for it when its window is full). */
  onStored?: () => void;
}

/**
 * Counts stored samples (the rows of the writer's INSERT INTO telemetry statements that
 * succeeded) and every statement: statements per sample is a figure the machine's load does not
 * move, unlike the rate.
 */
function countingSql(sql: SqlDatabase, tally: SqlTally): SqlDatabase {
  const isTelemetryInsert = (text: string) => text.startsWith('INSERT INTO telemetry');
  const counted = (executor: SqlExecutor): SqlExecutor => ({
    dialect: executor.dialect,
    query: (text, params) => {
      tally.statements += 1;
      return executor.query(text, params);
    },
    async execute(text: string, params?: readonly SqlValue[]): Promise<ExecuteResult> {
      tally.statements += 1;
      const result = await executor.execute(text, params);
      if (isTelemetryInsert(text)) {
        tally.telemetryInserts += 1;
        tally.rowsStored += result.changes;
        tally.onStored?.();
      }
      return result;
    },
  });
  return { ...counted(sql), transaction: (fn) => sql.transaction((tx) => fn(withOneByOneBatches(counted(tx)))), close: () => sql.close() };
}

interface BenchDevice {
  readonly id: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly certSerialHex: string;
}

/** One simulated device connection: the agent's session end over an in-memory link to the gateway core. */
/** Samples in flight on one connection at most: half the gateway's per-session work bound. */
const sessionInFlightMax = sessionTasksMax / 2;

class BenchConnection {
  readonly agent: AgentConnection;
  handle: ConnectionHandle | undefined;
  ready = false;
  /** Set when the gateway closed the session (code and reason): the run is then refused, not reported. */
  closedReason: string | undefined;
  #prevHashHex: string | undefined;

  constructor(readonly device: BenchDevice, materials: DeploymentMaterials, mode: IngestMode, readonly samplesPerFrame: number) {
    this.agent = new AgentConnection({
      deviceId: device.id, signer: { kid: deviceKid(device.id), seed: device.seed, provider },
      resolveGatewayKey: (kid) => (kid === materials.gatewaySigner.kid ? materials.gatewaySigner.publicKey : undefined),
      agentVersion: 'bench/1', lastCommandSeq: 0,
      ...(mode === 'session-mac' ? { sessionMac: { crypto: sessionCrypto, random: systemRandom } } : {}),
      ...(samplesPerFrame > 1 ? { telemetryBatch: true } : {}),
    });
  }

  connect(gateway: GatewayCore): void {
    this.handle = gateway.acceptConnection({
      deviceId: this.device.id, devicePublicKey: this.device.publicKey, certSerialHex: this.device.certSerialHex,
      send: (bytes) => {
        // Decoupled from the gateway's call stack, as a socket would be.
        queueMicrotask(() => {
          for (const event of this.agent.receive(bytes, Date.now())) if (event.kind === 'ready') this.ready = true;
          this.#flush();
        });
      },
      close: (code, reason) => {
        this.ready = false;
        this.closedReason = `${code} ${reason}`;
      },
    });
  }

  /**
   * Makes one frame of samplesPerFrame samples (TELEMETRY, or TELEMETRY_BATCH above 1): the
   * agent's work, which a deployment spends on the devices (measured apart, runMode).
   */
  /** Samples this connection made: each sample's distinct net_rx_bytes_per_sec. */
  #samplesMade = 0;

  makeSample(): Uint8Array[] {
    const nowMs = Date.now();
    const link = this.#prevHashHex === undefined ? {} : { prev_hash: this.#prevHashHex };
    // Each sample its own (one counter in its metrics): samples of one connection share a
    // millisecond, and the store keeps one row per (device, sampled_at, metrics) (decision 0012).
    const sample = () => ({ sampled_at: nowMs, metrics: { ...sampleMetrics, net_rx_bytes_per_sec: (this.#samplesMade += 1) } });
    if (this.samplesPerFrame === 1) this.agent.sendTelemetry({ ...sample(), ...link }, nowMs);
    else this.agent.sendTelemetryBatch({ samples: Array.from({ length: this.samplesPerFrame }, sample), ...link }, nowMs);
    const frames = this.agent.takeOutgoing();
    // sendTelemetry queued exactly this one frame (the session is ready and nothing else is pending).
    this.#prevHashHex = sha256Hex(frames[0]!);
    return frames;
  }

  /** Hands frames the agent made to the gateway, as its socket would. */
  deliver(frames: readonly Uint8Array[]): void {
    for (const frame of frames) this.handle?.receive(frame);
  }

  #flush(): void {
    for (const frame of this.agent.takeOutgoing()) this.handle?.receive(frame);
  }
}

function benchDevices(count: number, runTag: string): BenchDevice[] {
  return Array.from({ length: count }, (_, i) => {
    const seed = systemRandom.bytes(32);
    return { id: `ingest-${runTag}-${String(i + 1).padStart(5, '0')}`, seed, publicKey: provider.publicKeyFromSeed(seed), certSerialHex: hexFromBytes(systemRandom.bytes(8)).replace(/^0+/, '') || '1' };
  });
}

/** Device rows many per INSERT, before the control plane starts: its start publishes them to the gateways' admission keys. */
async function insertDevices(sql: SqlDatabase, devices: readonly BenchDevice[]): Promise<void> {
  const nowMs = Date.now();
  const rowsPerInsert = 500;
  for (let from = 0; from < devices.length; from += rowsPerInsert) {
    const chunk = devices.slice(from, from + rowsPerInsert);
    const params: SqlValue[] = chunk.flatMap((d) => [d.id, nowMs, d.certSerialHex, nowMs + deviceCertificateValidityMs, base64urlFromBytes(d.publicKey)]);
    await sql.execute(`INSERT INTO devices (id, status, created_at, cert_serial, cert_not_after, public_key) VALUES ${chunk.map(() => "(?, 'enrolled', ?, ?, ?, ?)").join(', ')}`, params);
  }
}

async function removeDevices(sql: SqlDatabase, runTag: string): Promise<void> {
  const pattern = `ingest-${runTag}-%`;
  await sql.execute('DELETE FROM telemetry WHERE device_id LIKE ?', [pattern]);
  await sql.execute('DELETE FROM devices WHERE id LIKE ?', [pattern]);
}

const redisKeyPrefix = (runTag: string): string => `sdc-bench-ingest-${runTag}:`;

/**
 * Deletes the run's Redis keys (its streams and key/value entries): each run's telemetry stream
 * keeps every sample it appended (tens of MB), and tonight's 27 runs had left about 800 MB.
 */
export async function removeRedisKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 3 });
  client.on('error', () => undefined);
  let removed = 0;
  try {
    let cursor = '0';
    // SCAN ends when the cursor comes back to 0; the bound only guards against a server that never says so.
    for (let round = 0; round < 1_000_000; round += 1) {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
      if (keys.length > 0) removed += await client.unlink(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    client.disconnect();
  }
  return removed;
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const startMs = performance.now();
  while (!condition()) {
    if (performance.now() - startMs > timeoutMs) throw new SdcError('BENCH_FAILED', `${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The raw node:crypto Ed25519 verify rate of a 500-byte message with a cached key, for the ratio. */
export function ed25519VerifyPerS(durationMs: number): number {
  const seed = systemRandom.bytes(32);
  const publicKey = provider.publicKeyFromSeed(seed);
  const message = new Uint8Array(500).fill(7);
  const signature = provider.sign(seed, message);
  for (let i = 0; i < 64; i++) provider.verify(publicKey, message, signature);
  const startMs = performance.now();
  let verifies = 0;
  while (performance.now() - startMs < durationMs) {
    for (let i = 0; i < 16; i++) provider.verify(publicKey, message, signature);
    verifies += 16;
  }
  return (verifies * 1000) / (performance.now() - startMs);
}

async function runMode(mode: IngestMode, samplesPerFrame: number, options: Required<Pick<IngestBenchOptions, 'connections' | 'durationMs' | 'warmupMs' | 'windowFrames'>> & IngestBenchOptions, materials: DeploymentMaterials, verifyPerS: number): Promise<ModeOutcome> {
  const runTag = hexFromBytes(systemRandom.bytes(4));
  const metrics = new ServiceMetrics();
  const dataDir = await mkdtemp(join(tmpdir(), 'sdc-bench-ingest-'));
  const stores: Stores = await openStores({
    dataDir, clock: systemClock, scheduler: systemScheduler, keyPrefix: redisKeyPrefix(runTag),
    // Saved at close only: the embedded case measures ingest, not file writes.
    sqlDurability: { mode: 'interval', intervalMs: 24 * 3600_000 },
    ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }), ...(options.mysqlUrl === undefined ? {} : { mysqlUrl: options.mysqlUrl }),
  });
  const sqlTally: SqlTally = { statements: 0, telemetryInserts: 0, rowsStored: 0 };
  let sent = 0;
  let cp: ControlPlane | undefined;
  let gateway: GatewayCore | undefined;
  try {
    const devices = benchDevices(options.connections, runTag);
    await insertDevices(stores.sql, devices);
    cp = await createControlPlane({
      materials, stores: { sql: countingSql(stores.sql, sqlTally), bus: stores.bus, kv: stores.kv },
      clock: systemClock, random: systemRandom, scheduler: systemScheduler, gatewayUrls: ['bench://gateway'], persistJwtKeys: false,
      consumerName: `cp-bench-${runTag}`, scryptParams: { N: 1024, r: 8, p: 1 }, metrics,
    });
    await cp.start();
    gateway = createGatewayCore({
      gatewayId: `gw-bench-${runTag}`, signer: { kid: materials.gatewaySigner.kid, seed: materials.gatewaySigner.seed }, provider,
      stores: { bus: stores.bus, kv: stores.kv }, clock: systemClock, random: systemRandom, scheduler: systemScheduler,
      commandKeys: new Map([[materials.commandSigner.kid, materials.commandSigner.publicKey]]),
      telemetryBatchEntriesMax: gatewayTelemetryBatchEntries, telemetryFramesPerEntryMax: gatewayTelemetryFramesPerEntry, connectionsMax: options.connections + 10,
      sessionCrypto: mode === 'session-mac' ? sessionCrypto : null,
      // Samples arrive far faster than heartbeats would: the session must not time out meanwhile.
      heartbeatIntervalMs: 3_600_000, metrics,
    });
    await gateway.start();
    const connections = devices.map((device) => new BenchConnection(device, materials, mode, samplesPerFrame));
    for (const connection of connections) connection.connect(gateway);
    await waitUntil(() => connections.every((c) => c.ready), sessionsReadyTimeoutMs, `${options.connections} sessions ready`);
    const expectedAlg = mode === 'session-mac' ? envelopeMacAlg : 'Ed25519';
    if (connections.some((c) => c.agent.sessionMacAgreed !== (mode === 'session-mac'))) {
      throw new SdcError('BENCH_FAILED', `the sessions did not agree on ${expectedAlg} for telemetry`);
    }
    if (samplesPerFrame > 1 && connections.some((c) => c.agent.telemetrySamplesMax < samplesPerFrame)) {
      throw new SdcError('BENCH_FAILED', `the gateway did not announce ${samplesPerFrame} samples per frame`);
    }

    // Closed loop: keep `windowFrames` samples in flight, round-robin over the connections, at most
    // sessionInFlightMax on each: a session whose queued work passes the gateway's bound is closed
    // GATEWAY_OVERLOADED (as it should be: a device sends a sample a minute), and with few connections
    // a window of 2,000 put 1,000 on each, so every session was closed and nothing was stored.
    // In samples; a session's bound is in frames (its queued tasks), so K samples per frame allow K times as many.
    const windowFrames = Math.min(options.windowFrames, options.connections * sessionInFlightMax * samplesPerFrame);
    let running = true;
    let next = 0;
    // The agents' share, taken out of service_cpu_us_per_sample: the process's CPU while a burst's
    // frames are made, before any is handed to the gateway. CPU, not wall time: timed by the wall,
    // a busy machine's other processes counted as the agents' (a run at load 6 reported 8 us of
    // service CPU per sample beside 60-70 in the runs around it, docs/benchmarks.md 2026-12-05).
    const agentTime = { cpuUs: 0 };
    // A full window waits for the next INSERT to store samples (at most windowWaitMs), not in a
    // setImmediate loop: on Redis + MySQL, where the window stays full, that loop's turns were
    // CPU of the process counted as the services' (the more the stores made it wait, the more).
    const windowRoom = () => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { sqlTally.onStored = undefined; resolve(); }, windowWaitMs);
      sqlTally.onStored = () => {
        sqlTally.onStored = undefined;
        clearTimeout(timer);
        resolve();
      };
    });
    const pump = async () => {
      while (running) {
        if (sent - sqlTally.rowsStored < windowFrames) {
          const burst: Array<{ connection: BenchConnection; frames: Uint8Array[] }> = [];
          const agentCpuAtStart = process.cpuUsage();
          while (sent - sqlTally.rowsStored < windowFrames && burst.length < 256) {
            const connection = connections[next]!;
            burst.push({ connection, frames: connection.makeSample() });
            next = (next + 1) % connections.length;
            sent += samplesPerFrame;
          }
          const agentCpu = process.cpuUsage(agentCpuAtStart);
          agentTime.cpuUs += agentCpu.user + agentCpu.system;
          for (const { connection, frames } of burst) connection.deliver(frames);
          // Let the gateway, the bus and the writer run.
          await new Promise((resolve) => setImmediate(resolve));
        } else {
          await windowRoom();
        }
      }
    };
    const pumping = pump();
    await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
    // The first scrape before the window's clocks start and the last after they stop, so their
    // cost is not measured; the ones between are (one registry read per interval).
    const scrapes = await startMetricsSeries({ scrape: () => metrics.text(), nowMs: () => systemClock.nowMs(), ...(options.scrapeIntervalMs === undefined ? {} : { intervalMs: options.scrapeIntervalMs }) });
    const backlogAtStart = sent - sqlTally.rowsStored;
    const tallyAtStart = { ...sqlTally };
    const agentCpuUsAtStart = agentTime.cpuUs;
    const promisesAtStart = promiseCount.made;
    const cpuAtStart = process.cpuUsage();
    const startMs = performance.now();
    await new Promise((resolve) => setTimeout(resolve, options.durationMs));
    const elapsedMs = performance.now() - startMs;
    const samplesStored = sqlTally.rowsStored - tallyAtStart.rowsStored;
    const statements = sqlTally.statements - tallyAtStart.statements;
    const telemetryInserts = sqlTally.telemetryInserts - tallyAtStart.telemetryInserts;
    const cpu = process.cpuUsage(cpuAtStart);
    const promisesMade = promiseCount.made - promisesAtStart;
    const backlogAtEnd = sent - sqlTally.rowsStored;
    const agentCpuUs = agentTime.cpuUs - agentCpuUsAtStart;
    const series = await scrapes.stop();
    running = false;
    await pumping;
    const closed = connections.find((c) => c.closedReason !== undefined);
    if (closed !== undefined) throw new SdcError('BENCH_FAILED', `the gateway closed ${closed.device.id}'s session in ${mode} mode: ${closed.closedReason}`);
    if (samplesStored === 0) throw new SdcError('BENCH_FAILED', `no telemetry was stored in ${mode} mode`);
    const samplesPerS = (samplesStored * 1000) / elapsedMs;
    options.onProgress?.(`${mode}, ${samplesPerFrame} per frame: ${Math.round(samplesPerS)} samples/s stored over ${options.connections} connections`);
    const row: IngestBenchRow = {
      mode, stores: `${options.redisUrl === undefined ? 'memory bus' : 'redis'} + ${options.mysqlUrl === undefined ? 'sql.js' : 'mysql'}`,
      connections: options.connections, samples_per_frame: samplesPerFrame, window_frames: windowFrames, samples_stored: samplesStored, elapsed_ms: elapsedMs,
      samples_per_s: samplesPerS, frames_per_s: samplesPerS / samplesPerFrame,
      ratio_to_ed25519_verify: samplesPerS / verifyPerS, cpu_us_per_sample: (cpu.user + cpu.system) / samplesStored,
      service_cpu_us_per_sample: Math.max(0, cpu.user + cpu.system - agentCpuUs) / samplesStored,
      backlog_at_start: backlogAtStart, backlog_at_end: backlogAtEnd,
      sql_statements_per_sample: statements / samplesStored, rows_per_telemetry_insert: telemetryInserts === 0 ? 0 : samplesStored / telemetryInserts,
      ...(process.env.SDC_BENCH_COUNT_PROMISES === '1' ? { promises_per_sample: promisesMade / samplesStored } : {}),
    };
    if (series.failures > 0) options.onProgress?.(`${mode}: ${series.failures} of ${series.entries.length} /metrics scrapes failed (noted in the series)`);
    const pair = seriesEnds(series);
    return pair === undefined ? { row, series } : { row, scrapes: pair, series };
  } finally {
    metrics.stop();
    // systemScheduler's timers are unref'd (a service's sockets keep it alive); here nothing else
    // would, and Node would exit with the consumers' last blocking reads pending.
    const keepAlive = setInterval(() => undefined, 1_000);
    await gateway?.stop().catch(() => undefined);
    await cp?.stop().catch(() => undefined);
    if (options.mysqlUrl !== undefined) await removeDevices(stores.sql, runTag).catch(() => undefined);
    await stores.close().catch(() => undefined);
    if (options.redisUrl !== undefined) await removeRedisKeys(options.redisUrl, redisKeyPrefix(runTag)).catch(() => undefined);
    clearInterval(keepAlive);
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function runIngestBench(input: IngestBenchOptions): Promise<IngestBenchOutcome> {
  const options = { ...ingestBenchDefaults, ...input };
  const materialsDir = await mkdtemp(join(tmpdir(), 'sdc-bench-ingest-pki-'));
  let materials: DeploymentMaterials;
  try {
    materials = await initDeployment({ dataDir: materialsDir, clock: systemClock, random: systemRandom });
  } finally {
    await rm(materialsDir, { recursive: true, force: true });
  }
  // As long as one mode's window, at most 1 s: a 200 ms smoke run (sdc report's tiny set) need not spend 1 s on its baseline.
  const verifyPerS = ed25519VerifyPerS(Math.min(1_000, options.durationMs));
  options.onProgress?.(`node:crypto Ed25519 verify: ${Math.round(verifyPerS)}/s`);
  const rows: IngestBenchRow[] = [];
  const scrapes: IngestBenchOutcome['scrapes'] = [];
  const series: IngestBenchOutcome['series'] = [];
  const perFrame = options.samplesPerFrame ?? [1];
  for (const k of perFrame) {
    if (!Number.isSafeInteger(k) || k < 1 || k > telemetryBatchLimits.samplesPerFrameMax) {
      throw new SdcError('BENCH_FAILED', `samples per frame must be integers from 1 to ${telemetryBatchLimits.samplesPerFrameMax}`);
    }
  }
  for (const mode of options.modes ?? ['session-mac', 'ed25519']) {
    // A batch exists only under the session MAC: the ed25519 mode runs one sample per frame.
    for (const samplesPerFrame of mode === 'ed25519' ? [1] : perFrame) {
      const outcome = await runMode(mode, samplesPerFrame, options, materials, verifyPerS);
      rows.push(outcome.row);
      if (outcome.scrapes !== undefined) scrapes.push({ mode, samplesPerFrame, ...outcome.scrapes });
      series.push({ mode, samplesPerFrame, series: outcome.series });
    }
  }
  return { rows, ed25519VerifyPerS: verifyPerS, scrapes, series };
}
