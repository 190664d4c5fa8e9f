import type { Logger } from 'pino';
import type { JsonObject } from '../../core/protocol/json-value.js';
import type { Clock } from '../../core/ports/ports.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';
import { actors } from './context.js';
import { WindowCounter } from './window-counter.js';

/**
 * Alerts a device causes (its ALERT frames and risk scores over the threshold) are stored,
 * published and audited one by one, so a device raising a hundred a second would flood the
 * alerts table, every live viewer and the audit chain. Per device and window, the first
 * alertsPerDeviceMax are raised; the next one raises a single summarising alert instead; the
 * rest are counted (droppedTotal, and in the window's counter) and dropped with a debug log.
 * Counted in the key/value store, so control planes sharing one Redis share the limit.
 */
export const alertRateLimits = Object.freeze({
  windowMs: 60_000,
  // 20 a minute is more than a healthy device raises in a day; an operator cannot read more.
  alertsPerDeviceMax: 20,
});
export type AlertRateLimits = typeof alertRateLimits;

/** raise: store it; summarise: store the one summary instead; drop: count and forget it. */
export type AlertAdmission = 'raise' | 'summarise' | 'drop';

export interface SummaryAlert {
  readonly deviceId: string;
  readonly kind: string;
  readonly severity: string;
  readonly message: string;
  readonly atMs: number;
  readonly detail: JsonObject;
  readonly actor: string;
}

export class AlertRateLimiter {
  readonly #limits: AlertRateLimits;
  readonly #counter: WindowCounter;
  readonly #logger: Logger;
  #droppedTotal = 0;

  constructor(options: { kv: KeyValueStore; clock: Clock; logger: Logger; limits?: Partial<AlertRateLimits> }) {
    this.#limits = { ...alertRateLimits, ...options.limits };
    this.#counter = new WindowCounter({ kv: options.kv, clock: options.clock, scope: 'alerts-device', windowMs: this.#limits.windowMs });
    this.#logger = options.logger;
  }

  /** Device alerts this process dropped since it started (a metric; the one replaced by the summary counts). */
  get droppedTotal(): number {
    return this.#droppedTotal;
  }

  async admit(deviceId: string): Promise<AlertAdmission> {
    const count = await this.#counter.add(deviceId);
    if (count <= this.#limits.alertsPerDeviceMax) return 'raise';
    this.#droppedTotal += 1;
    if (count === this.#limits.alertsPerDeviceMax + 1) {
      this.#logger.warn({ deviceId, alertsPerDeviceMax: this.#limits.alertsPerDeviceMax, windowMs: this.#limits.windowMs }, 'device alert rate exceeded; dropping its alerts until the window ends');
      return 'summarise';
    }
    this.#logger.debug({ deviceId, inWindow: count }, 'device alert dropped (rate limit)');
    return 'drop';
  }

  /** The one alert that stands for the alerts dropped in this window. */
  summaryAlert(deviceId: string, atMs: number): SummaryAlert {
    const { alertsPerDeviceMax, windowMs } = this.#limits;
    return {
      deviceId, kind: 'alert_rate_limited', severity: 'warning', atMs, actor: actors.system,
      message: `device ${deviceId} raised more than ${alertsPerDeviceMax} alerts in ${windowMs / 1000} s; its further alerts are dropped until the window ends`,
      detail: { alerts_per_device_max: alertsPerDeviceMax, window_ms: windowMs, window_ends_in_ms: this.#counter.msUntilWindowEnds() },
    };
  }
}
