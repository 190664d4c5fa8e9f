import { BoundedLru } from '../../core/crypto/bounded-lru.js';
import type { Clock } from '../../core/ports/ports.js';

/** What a device frame's check needs from the devices row. */
export interface DeviceKeyRecord {
  /** The enrolled Ed25519 key (32 bytes), or null if the device never enrolled. */
  readonly publicKey: Uint8Array | null;
  readonly revoked: boolean;
}

/** DeviceKeyCache.mark(): the generation and time a read elsewhere began at. */
export interface DeviceKeyReadMark {
  readonly generation: number;
  readonly atMs: number;
}

export const deviceKeyCacheLimits = Object.freeze({
  /** Devices kept: the devices that send telemetry at once, as the gateway's connectionsMax. */
  entriesMax: 10_000,
  /**
   * How long a row is trusted. This service drops its entries when it enrolls, renews or revokes a
   * device, and when any control plane's revocation notice arrives (DeviceService.start); a frame
   * whose signature fails under a cached key is checked again under a fresh read (a key renewed by
   * another process). So this only bounds a revocation by another process whose notice was lost
   * (pub/sub is at most once). It was 1 s, which left 1.9 SQL reads of the device row per command
   * (ACK and RESULT a second or more apart): 10 s keeps a command's frames on one read.
   */
  ttlMs: 10_000,
  /**
   * How long a row is trusted for a frame the gateway checked under the session MAC (TELEMETRY,
   * ADR 0004): the gateway admitted the device at AUTH against the kv revocation keys and closes
   * its sessions on the revocation notice, and such a frame needs only the revoked flag from the
   * row. A revocation still reaches this cache at once (invalidate, above); this bounds only a
   * lost notice, as ttlMs does, but must outlast the telemetry interval (60 s in the standard
   * profile), or every sample reads the row again (issue 17: 188 of 200 samples did at 10 s).
   */
  macCheckedTtlMs: 600_000,
});

/**
 * The device key and revocation status behind verifyDeviceFrame, so the telemetry writer does not
 * read the devices row once per sample. Invalidation bumps a generation: a read that began before
 * an invalidation never stores its (possibly stale) row.
 */
export class DeviceKeyCache {
  readonly #entries = new BoundedLru<string, { record: DeviceKeyRecord; fetchedAtMs: number }>(deviceKeyCacheLimits.entriesMax);
  /** Reads in flight, so a device's ACK and RESULT handled at once share one (bounded: one per device asking). */
  readonly #loading = new Map<string, { generation: number; record: Promise<DeviceKeyRecord> }>();
  #generation = 0;

  constructor(private readonly clock: Clock, private readonly load: (deviceId: string) => Promise<DeviceKeyRecord>) {}

  /** The cached row if younger than `ttlMs` (default deviceKeyCacheLimits.ttlMs; macCheckedTtlMs for a MAC-checked frame), else a read. */
  async get(deviceId: string, ttlMs: number = deviceKeyCacheLimits.ttlMs): Promise<DeviceKeyRecord> {
    return this.cached(deviceId, ttlMs) ?? this.#read(deviceId, this.clock.nowMs());
  }

  /** The cached row if younger than `ttlMs`, as get() would answer it without a read; undefined where get() would read. */
  cached(deviceId: string, ttlMs: number = deviceKeyCacheLimits.ttlMs): DeviceKeyRecord | undefined {
    const nowMs = this.clock.nowMs();
    const cached = this.#entries.get(deviceId);
    return cached !== undefined && nowMs - cached.fetchedAtMs < ttlMs && nowMs >= cached.fetchedAtMs ? cached.record : undefined;
  }

  /** A fresh read, whatever is cached: after a signature failed under the cached key. */
  reload(deviceId: string): Promise<DeviceKeyRecord> {
    return this.#read(deviceId, this.clock.nowMs(), false);
  }

  #read(deviceId: string, nowMs: number, share = true): Promise<DeviceKeyRecord> {
    const generation = this.#generation;
    const inFlight = this.#loading.get(deviceId);
    if (share && inFlight !== undefined && inFlight.generation === generation) return inFlight.record;
    const record = this.load(deviceId).then((loaded) => {
      if (generation === this.#generation) this.#entries.set(deviceId, { record: loaded, fetchedAtMs: nowMs });
      return loaded;
    }).finally(() => {
      if (this.#loading.get(deviceId)?.record === record) this.#loading.delete(deviceId);
    });
    this.#loading.set(deviceId, { generation, record });
    return record;
  }

  /** Where a read of the devices row made elsewhere starts, for `keep` (the generation and the time it is read at). */
  mark(): DeviceKeyReadMark {
    return { generation: this.#generation, atMs: this.clock.nowMs() };
  }

  /**
   * A row another statement read (the compliance read at a device's AUTH, issue 17), kept as if
   * this cache had read it at `mark`: so the device's first signed frames (its policy bundle
   * report) find it here instead of reading the row again. Dropped when an invalidation came
   * between the mark and now, exactly as a read of its own would be.
   */
  keep(deviceId: string, record: DeviceKeyRecord, mark: DeviceKeyReadMark): void {
    if (mark.generation === this.#generation) this.#entries.set(deviceId, { record, fetchedAtMs: mark.atMs });
  }

  /** After a change to the device's key or status has committed. */
  invalidate(): void {
    this.#generation += 1;
    this.#entries.clear();
  }
}
