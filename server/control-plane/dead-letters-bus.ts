import { SdcError } from '../../core/errors/index.js';
import { hexFromBytes } from '../../core/crypto/bytes.js';
import { gatewayCommandStream, kvKeys, streamMaxLen, streamNames } from '../bus-contract/streams.js';
import { deadFields, deadLetterStream, type StoredBusEntry } from '../stores/bus/bus-port.js';
import { actors, type ServiceContext } from './context.js';
import { pageLimit } from './pagination.js';

/**
 * Dead bus entries (docs/decisions/0007-dead-letters.md): what the stream bus moved to
 * `<stream>:dead`. A consumer dead-letters an entry it cannot take (a malformed or unknown event,
 * a command entry with a bad signature) or that failed deliveriesMax times (a long store outage),
 * and the gateway dead-letters a deliver entry it gave up on. Until now only their count was
 * visible (`sdc_dlq_depth`, the backpressure alert); an operator could not see what they were,
 * replay one whose cause is gone, or remove one with a reason.
 *
 * Dead-lettered *commands* are not served here: their per-device store is the commands table
 * (dead-letters.ts), whatever happened to their bus entry.
 *
 * Every action is audited before it acts (a crash between the two leaves an audited request the
 * operator sees refused and repeats), and one action per entry at a time is claimed in the
 * key/value store, so two operators cannot both replay one entry.
 */

export interface DeadBusEntryView {
  readonly stream: string;
  readonly id: string;
  /** Why it was dead-lettered (the consumer's or gateway's words). */
  readonly reason: string | null;
  readonly source_id: string | null;
  readonly group: string | null;
  readonly delivery_count: number | null;
  /** The entry's `kind` field and the device it names, when they can be read. */
  readonly kind: string | null;
  readonly device_id: string | null;
  /** The original fields (without the dead.* ones), each cut at fieldCharsShown. */
  readonly fields: Readonly<Record<string, string>>;
  readonly fields_truncated: boolean;
}

export const deadBusLimits = Object.freeze({
  /** A field value shown in a listing: enough to see what is wrong; the whole entry is up to 4 MiB. */
  fieldCharsShown: 2048,
  /** How long one operator's action holds an entry against another's. */
  actionClaimTtlMs: 60_000,
  reasonCharsMax: 512,
});

/** The streams whose dead letters the API serves: ours only, never an arbitrary key. */
const streamPattern = /^sdc:(?:events|telemetry|gw:[A-Za-z0-9_.-]{1,64}:commands)$/;
/** Gateway command streams listed by `streams()` (the id list may hold up to 1,024). */
const gatewayStreamsListedMax = 256;
const deadFieldNames: ReadonlySet<string> = new Set(Object.values(deadFields));

export class DeadBusEntryService {
  readonly #ctx: ServiceContext;

  constructor(options: { context: ServiceContext }) {
    this.#ctx = options.context;
  }

  /** Each served stream with the number of entries in its dead-letter stream. */
  async streams(): Promise<Array<{ stream: string; dead_entries: number }>> {
    const names: string[] = [streamNames.events, streamNames.telemetry, ...(await this.#gatewayStreams())];
    const counted: Array<{ stream: string; dead_entries: number }> = [];
    for (const stream of names) counted.push({ stream, dead_entries: await this.#ctx.bus.length(deadLetterStream(stream)) });
    return counted;
  }

  /** One page of `stream`'s dead entries, oldest first, after the entry id `after`. */
  async list(query: { stream: string; after?: string; limit?: number }): Promise<{ items: DeadBusEntryView[]; next_after: string | null }> {
    const stream = checkedStream(query.stream);
    const limit = pageLimit(query.limit);
    const entries = await this.#ctx.bus.range(deadLetterStream(stream), { ...(query.after === undefined ? {} : { afterId: checkedId(query.after, 'querystring/after') }), count: limit + 1 });
    const page = entries.slice(0, limit);
    return { items: page.map((entry) => viewOf(stream, entry)), next_after: entries.length > limit ? page.at(-1)!.id : null };
  }

  /** Removes one dead entry for good, with the operator's reason; audited (`dead_letter.entry_discarded`). */
  async discard(options: { stream: string; id: string; reason: string; actor: string }): Promise<{ stream: string; id: string; reason: string }> {
    const reason = checkedReason(options.reason);
    return this.#withClaim(options.stream, options.id, async ({ stream, view }) => {
      await this.#ctx.audit.append({
        kind: 'dead_letter.entry_discarded', actor: actors.user(options.actor), subject: `stream:${stream}`,
        payload: { stream, entry_id: view.id, reason, dead_reason: view.reason, source_id: view.source_id, kind: view.kind, device_id: view.device_id },
      });
      await this.#ctx.bus.remove(deadLetterStream(stream), [view.id]);
      return { stream, id: view.id, reason };
    });
  }

  /**
   * Appends the entry's original fields to its stream again (a new id, read by the group as a new
   * entry) and removes it from the dead-letter stream; audited (`dead_letter.entry_replayed`). For
   * an entry that failed for a cause now gone (a store outage); a malformed one fails again and
   * comes back here. Handlers are idempotent by design (at-least-once), so a replay of an entry
   * that had in fact been applied changes nothing.
   */
  async replay(options: { stream: string; id: string; actor: string }): Promise<{ stream: string; id: string; new_id: string }> {
    return this.#withClaim(options.stream, options.id, async ({ stream, view, fields }) => {
      await this.#ctx.audit.append({
        kind: 'dead_letter.entry_replayed', actor: actors.user(options.actor), subject: `stream:${stream}`,
        payload: { stream, entry_id: view.id, dead_reason: view.reason, source_id: view.source_id, kind: view.kind, device_id: view.device_id },
      });
      const newId = await this.#ctx.bus.append(stream, fields, { maxLen: maxLenOf(stream) });
      await this.#ctx.bus.remove(deadLetterStream(stream), [view.id]);
      return { stream, id: view.id, new_id: newId };
    });
  }

  /**
   * Runs `action` on the entry, which must exist, while holding the entry's claim in the key/value
   * store (DLQ_ENTRY_DISCARDED while another request holds it). The claim is released afterwards
   * by delete-if-equal on this request's token, so a claim that expired and was taken by another
   * request is not released by this one.
   */
  async #withClaim<T>(streamText: string, idText: string, action: (entry: { stream: string; view: DeadBusEntryView; fields: Record<string, string> }) => Promise<T>): Promise<T> {
    const stream = checkedStream(streamText);
    const id = checkedId(idText, 'body/id');
    const claimKey = `sdc:dlq:action:${stream}:${id}`;
    const token = hexFromBytes(this.#ctx.random.bytes(12));
    if (!(await this.#ctx.kv.set(claimKey, token, { ttlMs: deadBusLimits.actionClaimTtlMs, onlyIfAbsent: true }))) {
      throw new SdcError('DLQ_ENTRY_DISCARDED', `dead entry ${id} of ${stream} is being replayed or discarded by another request`, { stream, id });
    }
    try {
      // Read under the claim: an entry another request removed just before is not found, never acted on twice.
      const [entry] = await this.#ctx.bus.range(deadLetterStream(stream), { ...optionalAfter(idBefore(id)), count: 1 });
      if (entry === undefined || entry.id !== id) throw new SdcError('DLQ_ENTRY_NOT_FOUND', `no dead entry ${id} in ${deadLetterStream(stream)}`, { stream, id });
      return await action({ stream, view: viewOf(stream, entry), fields: originalFields(entry) });
    } finally {
      await this.#ctx.kv.deleteIfEqual(claimKey, token).catch((error: unknown) => this.#ctx.logger.warn({ err: error, stream, id }, 'dead entry claim not released; it expires'));
    }
  }

  async #gatewayStreams(): Promise<string[]> {
    let ids: unknown;
    try {
      ids = JSON.parse((await this.#ctx.kv.get(kvKeys.gatewayIds)) ?? '[]');
    } catch {
      ids = [];
    }
    if (!Array.isArray(ids)) return [];
    return ids.slice(0, gatewayStreamsListedMax).filter((id): id is string => typeof id === 'string').map(gatewayCommandStream).filter((name) => streamPattern.test(name));
  }
}

function checkedStream(stream: string): string {
  if (!streamPattern.test(stream)) throw new SdcError('API_VALIDATION', `stream must be ${streamNames.events}, ${streamNames.telemetry} or sdc:gw:ID:commands`, { path: 'stream' });
  return stream;
}

function checkedId(id: string, path: string): string {
  if (!/^\d{1,16}-\d{1,16}$/.test(id)) throw new SdcError('API_VALIDATION', 'an entry id is <ms>-<seq>', { path });
  return id;
}

/** The id just before `id`, so a range after it starts at `id` itself. */
function idBefore(id: string): string | undefined {
  const [ms, seq] = id.split('-').map(Number) as [number, number];
  if (seq > 0) return `${ms}-${seq - 1}`;
  return ms > 0 ? `${ms - 1}-${Number.MAX_SAFE_INTEGER}` : undefined;
}

function optionalAfter(afterId: string | undefined): { afterId?: string } {
  return afterId === undefined ? {} : { afterId };
}

function checkedReason(reason: string): string {
  const trimmed = reason.trim();
  if (trimmed.length === 0 || trimmed.length > deadBusLimits.reasonCharsMax) {
    throw new SdcError('API_VALIDATION', `reason must be 1 to ${deadBusLimits.reasonCharsMax} characters`, { path: 'body/reason' });
  }
  return trimmed;
}

function maxLenOf(stream: string): number {
  if (stream === streamNames.events) return streamMaxLen.events;
  if (stream === streamNames.telemetry) return streamMaxLen.telemetry;
  return streamMaxLen.gatewayCommands;
}

function originalFields(entry: StoredBusEntry): Record<string, string> {
  return Object.fromEntries(Object.entries(entry.fields).filter(([name]) => !deadFieldNames.has(name)));
}

function viewOf(stream: string, entry: StoredBusEntry): DeadBusEntryView {
  const original = originalFields(entry);
  let truncated = false;
  const shown: Record<string, string> = {};
  for (const [name, value] of Object.entries(original)) {
    truncated ||= value.length > deadBusLimits.fieldCharsShown;
    shown[name] = value.slice(0, deadBusLimits.fieldCharsShown);
  }
  const deliveryCount = Number(entry.fields[deadFields.deliveryCount]);
  return {
    stream, id: entry.id, reason: entry.fields[deadFields.reason] ?? null, source_id: entry.fields[deadFields.sourceId] ?? null,
    group: entry.fields[deadFields.group] ?? null, delivery_count: Number.isSafeInteger(deliveryCount) ? deliveryCount : null,
    kind: typeof original['kind'] === 'string' ? original['kind'].slice(0, 64) : null, device_id: deviceIdOf(original['data']),
    fields: shown, fields_truncated: truncated,
  };
}

/** The `device_id` of the entry's JSON data, if it is JSON and has one: a malformed entry often is not. */
function deviceIdOf(data: string | undefined): string | null {
  if (data === undefined || data.length > 256 * 1024) return null;
  try {
    const value = JSON.parse(data) as { device_id?: unknown };
    return typeof value.device_id === 'string' ? value.device_id.slice(0, 128) : null;
  } catch {
    return null;
  }
}
