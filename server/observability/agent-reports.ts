import type { ServiceMetrics } from './metrics.js';

/**
 * What agents say of themselves in HEARTBEAT (uptime_ms, queue_depth), kept per session for the
 * gateway's /metrics. Keyed weakly by the session object, so a session the gateway drops takes
 * its report with it: nothing here grows with sessions that ended.
 *
 * Exposed as a few fleet-wide figures, never one series per device: a fleet of 50,000 devices
 * would be 50,000 series per metric, which Prometheus is not for (the API answers per device).
 */
export interface AgentReport {
  /** The agent's process uptime as it reported it. */
  readonly uptimeMs: number;
  /** Commands the agent holds (received, not finished) as it reported it. */
  readonly queueDepth: number;
  /** Our clock when the heartbeat was taken in, to age the uptime to scrape time. */
  readonly heardAtMs: number;
}

export class AgentReports {
  readonly #bySession = new WeakMap<object, AgentReport>();

  record(session: object, body: { readonly uptime_ms: number; readonly queue_depth: number }, heardAtMs: number): void {
    this.#bySession.set(session, { uptimeMs: body.uptime_ms, queueDepth: body.queue_depth, heardAtMs });
  }

  /** The report of a session, if it sent a heartbeat. */
  of(session: object): AgentReport | undefined {
    return this.#bySession.get(session);
  }

  /**
   * Sets the gauges from the sessions held now (those that have reported): queue depth summed
   * and at most, uptime at its lowest (the latest restart), median and highest, each uptime aged
   * by the time since its heartbeat. With no report the figures are 0 and `sdc_agents_reporting` says 0.
   */
  collect(metrics: ServiceMetrics, sessions: Iterable<object>, nowMs: number): void {
    const reports: AgentReport[] = [];
    for (const session of sessions) {
      const report = this.#bySession.get(session);
      if (report !== undefined) reports.push(report);
    }
    metrics.agentsReporting.set(reports.length);
    let depthSum = 0;
    let depthMax = 0;
    for (const { queueDepth } of reports) {
      depthSum += queueDepth;
      depthMax = Math.max(depthMax, queueDepth);
    }
    metrics.agentQueueDepth.set({ stat: 'sum' }, depthSum);
    metrics.agentQueueDepth.set({ stat: 'max' }, depthMax);
    const uptimesS = reports.map((r) => (r.uptimeMs + Math.max(0, nowMs - r.heardAtMs)) / 1000).sort((a, b) => a - b);
    metrics.agentUptime.set({ stat: 'min' }, uptimesS[0] ?? 0);
    metrics.agentUptime.set({ stat: 'median' }, uptimesS[Math.floor((uptimesS.length - 1) / 2)] ?? 0);
    metrics.agentUptime.set({ stat: 'max' }, uptimesS.at(-1) ?? 0);
  }
}
