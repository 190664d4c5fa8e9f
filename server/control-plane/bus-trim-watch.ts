import { SdcError } from '../../core/errors/index.js';
import { kvKeys } from '../bus-contract/streams.js';
import { compareEntryIds } from '../stores/bus/bus-trim.js';
import { actors, type ServiceContext } from './context.js';

/**
 * Watches the streams appended with a maxLen for entries trimmed before their consumer group read
 * them (StreamBus.trimmedUnread): a control plane down or behind for long enough loses the oldest
 * unread telemetry or events to the trim, and before this nothing said so (decision 0004, Limits).
 * The loss is detected and counted, not prevented.
 *
 * Each loss is reported once, across restarts and replicas: the count the bus gives is cumulative
 * over the stream's life, and the part already reported (the high-water mark) is kept in the
 * key/value store beside the stream (kvKeys.busTrimmed), moved with compare-and-set, so only the
 * control plane that moves it reports. It lives in the store that holds the stream on purpose:
 * when Redis loses its data, the stream's counters start again from 0 and so does the mark (a
 * mark above the counters, from a stream that was created anew, is dropped the same way). A loss
 * that happened while no control plane ran is found at the next start, which checks before the
 * consumers read anything.
 *
 * A loss is a metric (onLost), an error log with the stable code STORE_ENTRIES_TRIMMED_UNREAD, an
 * audit entry `bus.entries_trimmed_unread` (how many, between which ids and so which times), and
 * for `degradedWindowMs` after it a reason in `degraded()`, which /readyz reports.
 */
export interface BusTrimTarget {
  readonly stream: string;
  readonly group: string;
}

export interface BusTrimLoss {
  readonly stream: string;
  readonly group: string;
  /** Entries lost since the last report. */
  readonly entriesLost: number;
  /** Lost over the stream's life (the new high-water mark). */
  readonly entriesLostTotal: number;
  /** false: the bus gave a lower bound (the group had read past the gap); a later check may add to it. */
  readonly exact: boolean;
  /** The lost entries' ids lie after this one (the group's position before the loss, as far as known)... */
  readonly afterId: string;
  /** ...and before this one (the stream's first entry when detected; null: the stream is empty). */
  readonly beforeId: string | null;
  readonly detectedAtMs: number;
}

/** A type, not an interface, so it fits the readiness report's DegradedReason (an index signature). */
export type DegradedReason = {
  readonly code: 'STORE_ENTRIES_TRIMMED_UNREAD';
  readonly stream: string;
  readonly group: string;
  /** Entries lost over the stream's life, as of the last loss. */
  readonly entries_lost: number;
  readonly detected_at_ms: number;
};

export interface BusTrimWatchOptions {
  readonly context: ServiceContext;
  /** The stream and group pairs to check; read at each check (gateway command streams come and go). */
  readonly targets: () => Promise<readonly BusTrimTarget[]>;
  /** Called once per loss with the entries lost since the last report (the metric). */
  readonly onLost: (loss: BusTrimLoss) => void;
  /** How long after a loss degraded() names it (default 1 h). */
  readonly degradedWindowMs?: number;
}

/** Stream and group pairs checked per pass at most (each is one bounded bus call). */
export const busTrimTargetsMax = 1_100;
const degradedWindowMsDefault = 60 * 60 * 1000;

/** The high-water mark as kept in the key/value store. */
interface TrimMark {
  /** Entries lost over the stream's life, reported already. */
  readonly lost: number;
  /** The stream's entries-added when the mark was written: counters below it mean the stream was created anew. */
  readonly entriesAdded: number;
  /** The group's last delivered id then: a later loss lies after it. */
  readonly lastDeliveredId: string;
  /** When the last loss was reported (null: never): a restarted control plane stays degraded until the window ends. */
  readonly lostAtMs: number | null;
}

function parseMark(text: string | null): TrimMark | null {
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as Partial<TrimMark>;
    if (Number.isSafeInteger(value.lost) && Number.isSafeInteger(value.entriesAdded) && typeof value.lastDeliveredId === 'string') {
      return { lost: value.lost!, entriesAdded: value.entriesAdded!, lastDeliveredId: value.lastDeliveredId, lostAtMs: Number.isSafeInteger(value.lostAtMs) ? value.lostAtMs! : null };
    }
  } catch {
    // A mark that does not parse is treated as none: at worst a loss is reported a second time.
  }
  return null;
}

/** The Unix milliseconds of an entry id (`<ms>-<seq>`). */
function msOfId(id: string): number {
  return Number(id.split('-')[0]);
}

export class BusTrimWatch {
  readonly #o: BusTrimWatchOptions;
  readonly #degradedWindowMs: number;
  /** The newest loss per `stream group`, for degraded(). */
  readonly #recent = new Map<string, DegradedReason>();

  constructor(options: BusTrimWatchOptions) {
    this.#o = options;
    this.#degradedWindowMs = options.degradedWindowMs ?? degradedWindowMsDefault;
  }

  /** Checks every target once; returns the losses found (each reported once). A target that fails is logged and skipped. */
  async check(): Promise<BusTrimLoss[]> {
    const losses: BusTrimLoss[] = [];
    const targets = (await this.#o.targets()).slice(0, busTrimTargetsMax);
    for (const target of targets) {
      try {
        const loss = await this.#checkOne(target);
        if (loss !== undefined) losses.push(loss);
      } catch (error) {
        // No group yet (a gateway that never started, a store just wiped): nothing was read, so nothing can be lost to it.
        if (SdcError.is(error, 'STORE_NO_GROUP')) continue;
        this.#o.context.logger.warn({ err: error, ...target }, 'bus trim check failed; tried again at the next pass');
      }
    }
    return losses;
  }

  /** The losses of the last degradedWindowMs, for /readyz. */
  degraded(): DegradedReason[] {
    const nowMs = this.#o.context.clock.nowMs();
    for (const [key, reason] of this.#recent) if (nowMs - reason.detected_at_ms >= this.#degradedWindowMs) this.#recent.delete(key);
    return [...this.#recent.values()];
  }

  async #checkOne(target: BusTrimTarget): Promise<BusTrimLoss | undefined> {
    const { bus, kv, clock } = this.#o.context;
    const key = kvKeys.busTrimmed(target.stream, target.group);
    const report = await bus.trimmedUnread(target.stream, target.group);
    const markText = await kv.get(key);
    const stored = parseMark(markText);
    // Counters below the mark's: the stream was created anew (its store lost its data), so was the count.
    const mark = stored !== null && stored.entriesAdded <= report.entriesAdded ? stored : null;
    if (mark?.lostAtMs !== null && mark?.lostAtMs !== undefined) this.#remember(target, mark.lost, mark.lostAtMs);
    if (report.entriesLost === null) return undefined;
    const reported = mark?.lost ?? 0;
    const entriesLost = report.entriesLost - reported;
    const nowMs = clock.nowMs();
    const next: TrimMark = {
      lost: Math.max(reported, report.entriesLost), entriesAdded: report.entriesAdded, lastDeliveredId: report.lastDeliveredId,
      lostAtMs: entriesLost > 0 ? nowMs : (mark?.lostAtMs ?? null),
    };
    const nextText = JSON.stringify(next);
    if (nextText === markText) return undefined;
    // Only the control plane whose write lands reports: another replica that moved the mark first reported it.
    const moved = markText === null ? await kv.set(key, nextText, { onlyIfAbsent: true }) : await kv.compareAndSet(key, markText, nextText);
    if (!moved || entriesLost <= 0) return undefined;
    const behind = report.firstId === null || compareEntryIds(report.lastDeliveredId, report.firstId) < 0;
    const loss: BusTrimLoss = {
      ...target, entriesLost, entriesLostTotal: next.lost, exact: report.exact,
      afterId: behind || mark === null ? report.lastDeliveredId : mark.lastDeliveredId, beforeId: report.firstId, detectedAtMs: nowMs,
    };
    await this.#report(loss);
    return loss;
  }

  async #report(loss: BusTrimLoss): Promise<void> {
    const { context, onLost } = this.#o;
    this.#remember(loss, loss.entriesLostTotal, loss.detectedAtMs);
    onLost(loss);
    const fromMs = msOfId(loss.afterId);
    const toMs = loss.beforeId === null ? null : msOfId(loss.beforeId);
    context.logger.error({
      code: 'STORE_ENTRIES_TRIMMED_UNREAD', stream: loss.stream, group: loss.group, entriesLost: loss.entriesLost, entriesLostTotal: loss.entriesLostTotal,
      exact: loss.exact, afterId: loss.afterId, beforeId: loss.beforeId,
    }, `${loss.entriesLost} entries of ${loss.stream} were trimmed before group ${loss.group} read them (appended between ${new Date(fromMs).toISOString()} and ${toMs === null ? 'now' : new Date(toMs).toISOString()}); they are lost`);
    try {
      await context.db.transaction((tx) => context.audit.record(tx, {
        kind: 'bus.entries_trimmed_unread', actor: actors.system, subject: `stream:${loss.stream}`,
        payload: {
          code: 'STORE_ENTRIES_TRIMMED_UNREAD', stream: loss.stream, group: loss.group, entries_lost: loss.entriesLost, entries_lost_total: loss.entriesLostTotal,
          exact: loss.exact, after_id: loss.afterId, before_id: loss.beforeId, appended_after_ms: fromMs, appended_before_ms: toMs,
        },
      }));
      await context.settleAudit();
    } catch (error) {
      // The mark has moved, so this loss is not reported again: the error log above is its record.
      context.logger.error({ err: error, code: 'STORE_ENTRIES_TRIMMED_UNREAD', stream: loss.stream, group: loss.group }, 'the audit entry of a trimmed-entries loss failed');
    }
  }

  #remember(target: BusTrimTarget, entriesLost: number, atMs: number): void {
    if (this.#o.context.clock.nowMs() - atMs >= this.#degradedWindowMs) return;
    const key = `${target.stream} ${target.group}`;
    const known = this.#recent.get(key);
    if (known !== undefined && known.detected_at_ms >= atMs) return;
    this.#recent.set(key, { code: 'STORE_ENTRIES_TRIMMED_UNREAD', stream: target.stream, group: target.group, entries_lost: entriesLost, detected_at_ms: atMs });
  }
}
