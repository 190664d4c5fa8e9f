import type { FastifyInstance } from 'fastify';
import type { Clock, Scheduler } from '../../core/ports/ports.js';
import { SdcError } from '../../core/errors/index.js';

/**
 * Readiness of a control-plane process, for `GET /readyz` (docs/api.md): while the process
 * starts, what the store connects last saw; once it runs, a live probe of each store.
 * `GET /healthz` only says the process is alive and serving HTTP.
 */

/** A store the process needs: `mysql` or `sql.js` for SQL, `redis` or `embedded` for the bus and key/value store. */
export interface Dependency {
  readonly name: string;
  readonly role: 'sql' | 'bus and key/value';
}

export type DependencyState = 'waiting' | 'up' | 'down';

/** Something that went wrong while the process ran, reported for a while though it still serves (e.g. bus entries lost to a trim). */
export interface DegradedReason {
  /** A stable error code (docs/errors.md), e.g. STORE_ENTRIES_TRIMMED_UNREAD. */
  readonly code: string;
  readonly [detail: string]: string | number;
}

export interface ReadinessReport {
  readonly ready: boolean;
  /** `degraded`: ready (200), with `degraded` naming what went wrong lately. */
  readonly status: 'starting' | 'ready' | 'degraded' | 'not_ready';
  /** The names of the stores that are down, e.g. `["mysql"]`. */
  readonly down: readonly string[];
  readonly dependencies: ReadonlyArray<{ readonly name: string; readonly role: string; readonly state: DependencyState; readonly code?: string }>;
  /** Present only while there is something to say: see DegradedReason. */
  readonly degraded?: readonly DegradedReason[];
}

export const readinessLimits = Object.freeze({
  /** A store that has not answered a probe in this long counts as down. */
  probeTimeoutMs: 2_000,
  /** Probes run at most once per this interval; /readyz is unauthenticated and must not become a way to load the stores. */
  reportCacheMs: 1_000,
});

export type Probe = () => Promise<unknown>;

export class Readiness {
  readonly #clock: Clock;
  readonly #scheduler: Scheduler;
  readonly #dependencies: readonly Dependency[];
  readonly #states = new Map<string, { state: DependencyState; code?: string }>();
  #probes: ReadonlyMap<string, Probe> | undefined;
  #cached: { atMs: number; report: ReadinessReport } | undefined;
  #inFlight: Promise<ReadinessReport> | undefined;
  #degradedBy: (() => readonly DegradedReason[]) | undefined;

  constructor(options: { dependencies: readonly Dependency[]; clock: Clock; scheduler: Scheduler }) {
    this.#clock = options.clock;
    this.#scheduler = options.scheduler;
    this.#dependencies = options.dependencies;
    for (const d of options.dependencies) this.#states.set(d.name, { state: 'waiting' });
  }

  markUp(name: string): void {
    if (this.#states.has(name)) this.#states.set(name, { state: 'up' });
  }

  markDown(name: string, code: string): void {
    if (this.#states.has(name)) this.#states.set(name, { state: 'down', code });
  }

  /** The process has started: from now on each report probes the stores. */
  running(probes: ReadonlyMap<string, Probe>): void {
    this.#probes = probes;
    this.#cached = undefined;
  }

  /** Where the running process's degraded reasons come from (the control plane's BusTrimWatch). */
  degradedBy(source: () => readonly DegradedReason[]): void {
    this.#degradedBy = source;
    this.#cached = undefined;
  }

  /** The current report; while running, probes at most once per reportCacheMs and one probe round at a time. */
  async report(): Promise<ReadinessReport> {
    if (this.#probes === undefined) return this.#snapshot('starting');
    const nowMs = this.#clock.nowMs();
    if (this.#cached !== undefined && nowMs - this.#cached.atMs < readinessLimits.reportCacheMs) return this.#cached.report;
    this.#inFlight ??= this.#probeAll(this.#probes).finally(() => { this.#inFlight = undefined; });
    return this.#inFlight;
  }

  async #probeAll(probes: ReadonlyMap<string, Probe>): Promise<ReadinessReport> {
    await Promise.all(this.#dependencies.map(async (d) => {
      const probe = probes.get(d.name);
      if (probe === undefined) return;
      try {
        await this.#withTimeout(probe());
        this.markUp(d.name);
      } catch (error) {
        this.markDown(d.name, SdcError.is(error) ? error.code : 'STORE_UNAVAILABLE');
      }
    }));
    const report = this.#snapshot('running');
    this.#cached = { atMs: this.#clock.nowMs(), report };
    return report;
  }

  #withTimeout(work: Promise<unknown>): Promise<unknown> {
    let timer: ReturnType<Scheduler['schedule']> | undefined;
    const timeout = new Promise((_resolve, reject) => {
      timer = this.#scheduler.schedule(readinessLimits.probeTimeoutMs, () => reject(new SdcError('STORE_UNAVAILABLE', `no answer in ${readinessLimits.probeTimeoutMs} ms`)));
    });
    return Promise.race([work, timeout]).finally(() => { if (timer !== undefined) this.#scheduler.cancel(timer); });
  }

  #snapshot(phase: 'starting' | 'running'): ReadinessReport {
    const dependencies = this.#dependencies.map((d) => {
      const { state, code } = this.#states.get(d.name)!;
      return { name: d.name, role: d.role, state, ...(code === undefined ? {} : { code }) };
    });
    const down = dependencies.filter((d) => d.state === 'down').map((d) => d.name);
    const ready = phase === 'running' && dependencies.every((d) => d.state === 'up');
    const degraded = phase === 'running' ? this.#degradedBy?.() ?? [] : [];
    const status = phase === 'starting' ? 'starting' : !ready ? 'not_ready' : degraded.length > 0 ? 'degraded' : 'ready';
    return { ready, status, down, dependencies, ...(degraded.length > 0 ? { degraded } : {}) };
  }

  /** One line for a 503 before the API is up: what the process is waiting for. */
  async waitingFor(): Promise<string> {
    const report = await this.report();
    const pending = report.dependencies.filter((d) => d.state !== 'up').map((d) => `${d.name} (${d.state})`);
    return pending.length === 0 ? 'the control plane is starting' : `the control plane is waiting for ${pending.join(', ')}`;
  }
}

/** The body and status of `GET /healthz`: the process is alive and serving HTTP. */
export const healthzAnswer = Object.freeze({ status: 200, body: Object.freeze({ status: 'alive' }) });

/** `GET /healthz` and `GET /readyz` on the running API, public like the other probes of a supervisor or load balancer. */
export function registerProbeRoutes(app: FastifyInstance, readiness: Readiness): void {
  app.get('/healthz', { config: { auth: 'public' } }, async (_request, reply) => reply.status(healthzAnswer.status).send(healthzAnswer.body));
  app.get('/readyz', { config: { auth: 'public' } }, async (_request, reply) => {
    const report = await readiness.report();
    return reply.status(report.ready ? 200 : 503).header('cache-control', 'no-store').send(report);
  });
}
