import { timingSafeEqual } from 'node:crypto';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SdcError } from '../../core/errors/index.js';
import { executionOutcome, executionTerminalStates, type ExecutionState } from '../../core/ota/execution-machine.js';

/**
 * The Prometheus metrics of one process (issue 12, 11.1), in the text exposition format. One
 * registry per process, never prom-client's global one, so that tests and the simulator can run
 * several services in one process. Counters and histograms are updated where things happen;
 * gauges over the stores (bus pending, dead letters, agents online) are read at scrape time by
 * collectors each service registers, each bounded (a capped pending read, one COUNT query).
 */

/** Seconds: from 5 ms to 10 minutes (a command's TTL default). */
const commandLatencyBucketsS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Pending entries read per stream and group at a scrape; a larger backlog is reported as this many. */
export const pendingEntriesReadMax = 10_000;
/** Event-loop delay sampling resolution. */
const eventLoopResolutionMs = 10;
export const metricsContentType = 'text/plain; version=0.0.4; charset=utf-8';

export type Collector = () => Promise<void>;

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly commandLatency: Histogram<'opcode' | 'final_state'>;
  readonly telemetrySamples: Counter<'role'>;
  readonly telemetryDuplicates: Counter;
  readonly busEntriesTrimmedUnread: Counter<'stream' | 'group'>;
  readonly httpErrors: Counter<'code' | 'status'>;
  readonly websocketErrors: Counter<'code'>;
  readonly alertsRaised: Counter<'kind'>;
  readonly busPending: Gauge<'stream' | 'group'>;
  readonly deadLetters: Gauge<'stream'>;
  readonly agentsOnline: Gauge<'role'>;
  readonly eventLoopDelay: Gauge<'quantile'>;
  readonly agentsReporting: Gauge;
  readonly agentQueueDepth: Gauge<'stat'>;
  readonly agentUptime: Gauge<'stat'>;
  readonly otaExecutions: Counter<'state' | 'outcome'>;
  readonly otaNoticeRefusalsUnaudited: Counter<'reason'>;
  readonly otaArtifactUrlsNotRenewed: Counter<'reason'>;
  readonly crlState: Gauge<'state'>;
  readonly crlNumber: Gauge;
  readonly crlNextUpdate: Gauge;
  readonly crlFilesRefused: Counter<'code'>;
  readonly crlFetchFailures: Counter<'code'>;
  readonly #collectors: Collector[] = [];
  #loopDelay: IntervalHistogram | undefined;
  #collecting: Promise<void> | undefined;

  readonly #onCollectorError: (error: unknown) => void;

  /** `onCollectorError`: a collector that fails leaves its gauges at their last values; the caller logs it. */
  constructor(options: { onCollectorError?: (error: unknown) => void } = {}) {
    this.#onCollectorError = options.onCollectorError ?? (() => undefined);
    const registers = [this.registry];
    this.commandLatency = new Histogram({
      name: 'sdc_command_latency_seconds', help: 'From a command\'s creation to its final state, by opcode and final state (control plane)',
      labelNames: ['opcode', 'final_state'], buckets: commandLatencyBucketsS, registers,
    });
    this.telemetrySamples = new Counter({
      name: 'sdc_telemetry_samples_total', help: 'Telemetry samples taken in: forwarded by a gateway (role gateway), stored by the control plane (role control-plane); rate() gives the ingest rate',
      labelNames: ['role'], registers,
    });
    this.telemetryDuplicates = new Counter({
      name: 'sdc_telemetry_duplicates_total',
      help: 'Telemetry samples the control plane found stored already (same device, sampled_at and metrics: a retried append, a redelivered entry, a resend) and skipped; also counted in sdc_telemetry_samples_total',
      registers,
    });
    this.busEntriesTrimmedUnread = new Counter({
      name: 'sdc_bus_entries_trimmed_unread_total',
      help: 'Stream entries trimmed (maxLen) before the consumer group read them, per stream and group: lost, each counted once by one control plane (STORE_ENTRIES_TRIMMED_UNREAD)',
      labelNames: ['stream', 'group'], registers,
    });
    this.httpErrors = new Counter({ name: 'sdc_http_errors_total', help: 'API answers with status 400 or above, by error code and status', labelNames: ['code', 'status'], registers });
    this.websocketErrors = new Counter({
      name: 'sdc_websocket_errors_total', help: 'Gateway refusals by error code: refused frames, refused connections, sessions closed with a typed code', labelNames: ['code'], registers,
    });
    this.alertsRaised = new Counter({
      name: 'sdc_alerts_raised_total', help: 'Alerts stored by the control plane, by kind (one per rule episode: device_offline, risk_score, update_failed, tamper, backpressure; device alerts)',
      labelNames: ['kind'], registers,
    });
    // prom-client reads every metric of a scrape at once (Promise.all), so a gauge without a
    // collect of its own would be read before another gauge's collect had set it, one scrape
    // stale. Every collected gauge awaits the same pass instead: the first one read starts it.
    const collect = (): Promise<void> => this.#collectOnce();
    this.busPending = new Gauge({
      name: 'sdc_bus_pending_entries', help: `Entries read but not acknowledged, per stream and consumer group (at most ${pendingEntriesReadMax} counted)`,
      labelNames: ['stream', 'group'], registers, collect,
    });
    this.deadLetters = new Gauge({ name: 'sdc_dlq_depth', help: 'Entries in a stream\'s dead-letter stream (<stream>:dead)', labelNames: ['stream'], registers, collect });
    this.agentsOnline = new Gauge({
      name: 'sdc_agents_online', help: 'Devices online: with a gateway recorded (role control-plane), authenticated sessions held (role gateway)', labelNames: ['role'], registers, collect,
    });
    this.eventLoopDelay = new Gauge({ name: 'sdc_event_loop_delay_seconds', help: 'Event-loop delay since the previous scrape (p50, p99, max)', labelNames: ['quantile'], registers, collect });
    // From the agents' HEARTBEATs (agent-reports.ts), over the sessions this gateway holds.
    this.agentsReporting = new Gauge({ name: 'sdc_agents_reporting', help: 'Sessions held by this gateway whose agent has sent a HEARTBEAT (the figures below are over these)', registers, collect });
    this.agentQueueDepth = new Gauge({
      name: 'sdc_agent_queue_depth', help: 'Commands the agents hold (received, not finished), from their last HEARTBEAT: stat sum (all agents) and max (the fullest one)',
      labelNames: ['stat'], registers, collect,
    });
    this.agentUptime = new Gauge({
      name: 'sdc_agent_uptime_seconds', help: 'Agent process uptime from the last HEARTBEAT, aged to the scrape: stat min (the latest restart), median, max',
      labelNames: ['stat'], registers, collect,
    });
    this.otaExecutions = new Counter({
      name: 'sdc_ota_executions_total',
      help: 'OTA device executions that reached a terminal state, by state and outcome (success, failure, not_counted as in core/ota/execution-machine.ts); success rate: rate of outcome="success" over rate of success and failure',
      labelNames: ['state', 'outcome'], registers,
    });
    // The gateway's CRL file (server/deployment/crl-file-watch.ts, decision 0021), set by its collector.
    this.crlState = new Gauge({
      name: 'sdc_gateway_crl_state', help: 'The CRL the gateway holds: 1 for its state, fresh (within nextUpdate + grace), stale (past it) or none (no CRL taken)',
      labelNames: ['state'], registers, collect,
    });
    this.crlNumber = new Gauge({ name: 'sdc_gateway_crl_number', help: 'CRL number of the CRL the gateway holds (0: none)', registers, collect });
    this.crlNextUpdate = new Gauge({
      name: 'sdc_gateway_crl_next_update_timestamp_seconds', help: 'nextUpdate of the CRL the gateway holds, Unix seconds (0: none)', registers, collect,
    });
    this.crlFilesRefused = new Counter({
      name: 'sdc_gateway_crl_files_refused_total', help: 'CRL file reads refused by the gateway, by code: TRUST_CRL_INVALID (does not parse or verify), TRUST_CRL_ROLLED_BACK (numbered below the highest taken), and TRUST_CRL_RECORD_INVALID (the key/value CRL record is not a CRL of our intermediate; written over); counted at each reload while it stays so',
      labelNames: ['code'], registers, collect,
    });
    this.crlFetchFailures = new Counter({
      name: 'sdc_gateway_crl_fetch_failures_total', help: 'CRL fetches from --crl-url that gave the gateway no CRL, by code: TRUST_CRL_FETCH_FAILED (connection or TLS), TRUST_CRL_FETCH_TIMEOUT, TRUST_CRL_FETCH_REFUSED (status not 200), TRUST_CRL_FETCH_TOO_LARGE, TRUST_CRL_INVALID (does not parse or verify); the CRL held is kept',
      labelNames: ['code'], registers, collect,
    });
    this.otaNoticeRefusalsUnaudited = new Counter({
      name: 'sdc_ota_notice_refusals_unaudited_total',
      help: 'Devices\' notice_refused OTA reports not audited: repeat (audited once per execution and code already; a replayed frame or the agent reporting again), ended (the execution is over)',
      labelNames: ['reason'], registers,
    });
    for (const reason of ['repeat', 'ended']) this.otaNoticeRefusalsUnaudited.inc({ reason }, 0);
    this.otaArtifactUrlsNotRenewed = new Counter({
      name: 'sdc_ota_artifact_urls_not_renewed_total',
      help: 'Devices\' artifact_url_expired OTA reports answered without a newly presigned URL: reannounced (the newest URL is still good for over a quarter of its lifetime; the stored notice announced again, nothing signed), unexpired (the same, announced again within the re-push interval already: nothing done, e.g. a replayed frame), ended (the execution is over)',
      labelNames: ['reason'], registers,
    });
    for (const reason of ['reannounced', 'unexpired', 'ended']) this.otaArtifactUrlsNotRenewed.inc({ reason }, 0);
    // Every series from zero, so rate() sees the first execution of each state.
    for (const state of executionTerminalStates) this.otaExecutions.inc({ state, outcome: executionOutcome[state] }, 0);
  }

  /**
   * The hook for the OTA code: an execution reached `state`. Only terminal states count (a label
   * per state is bounded); any other state counts nothing and answers false, so a wrong call is
   * seen in a test rather than as a stray series.
   */
  otaExecutionFinished(state: ExecutionState): boolean {
    const outcome = executionOutcome[state];
    if (!executionTerminalStates.includes(state) || outcome === 'pending' || outcome === undefined) return false;
    this.otaExecutions.inc({ state, outcome });
    return true;
  }

  /** A gauge reader run at each scrape (bus pending, dead letters, agents online). */
  addCollector(collector: Collector): void {
    this.#collectors.push(collector);
  }

  /** The exposition text (metricsContentType). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** One collection per scrape however many gauges ask for it. */
  #collectOnce(): Promise<void> {
    this.#collecting ??= this.#collect().finally(() => { this.#collecting = undefined; });
    return this.#collecting;
  }

  async #collect(): Promise<void> {
    this.#sampleEventLoop();
    for (const collector of this.#collectors) {
      try {
        await collector();
      } catch (error) {
        this.#onCollectorError(error);
      }
    }
  }

  /** Started at the first scrape, so a process that is never scraped pays nothing. */
  #sampleEventLoop(): void {
    if (this.#loopDelay === undefined) {
      this.#loopDelay = monitorEventLoopDelay({ resolution: eventLoopResolutionMs });
      this.#loopDelay.enable();
      return;
    }
    const h = this.#loopDelay;
    const seconds = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
    this.eventLoopDelay.set({ quantile: '0.5' }, seconds(h.percentile(50)));
    this.eventLoopDelay.set({ quantile: '0.99' }, seconds(h.percentile(99)));
    this.eventLoopDelay.set({ quantile: 'max' }, seconds(h.max));
    h.reset();
  }

  stop(): void {
    this.#loopDelay?.disable();
    this.#loopDelay = undefined;
  }
}

/**
 * Who may scrape: with a token configured, only a request carrying it (`Authorization: Bearer`,
 * compared in constant time); without one, only a loopback peer. `/metrics` names streams,
 * opcodes and error rates, which an outsider has no business reading.
 */
export function requireScrapeAllowed(options: { scrapeToken: string | undefined; authorization: string | undefined; remoteAddress: string | undefined }): void {
  const { scrapeToken } = options;
  if (scrapeToken !== undefined) {
    const presented = /^Bearer (.+)$/.exec(options.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(presented, 'utf8');
    const b = Buffer.from(scrapeToken, 'utf8');
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new SdcError('API_METRICS_TOKEN_INVALID', 'GET /metrics needs the scrape token (Authorization: Bearer)');
    return;
  }
  if (!isLoopback(options.remoteAddress)) throw new SdcError('API_METRICS_FORBIDDEN', 'GET /metrics is answered on loopback only when no scrape token is configured');
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Scrape tokens shorter than this are refused at start: a guessable token is no better than none. */
export const scrapeTokenLengthMin = 16;

export function requireUsableScrapeToken(token: string, source: string): string {
  const trimmed = token.trim();
  if (trimmed.length < scrapeTokenLengthMin || /\s/.test(trimmed)) {
    throw new SdcError('API_METRICS_TOKEN_INVALID', `the scrape token from ${source} must be at least ${scrapeTokenLengthMin} characters without spaces`);
  }
  return trimmed;
}
