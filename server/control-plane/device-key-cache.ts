import { BoundedLru } from '../../core/crypto/bounded-lru.js';
import type { Clock } from '../../core/ports/ports.js';

/** What a device frame's check needs from the devices row. */
export interface DeviceKeyRecord {
  /** The enrolled Ed25519 key (32 bytes), or null if the device never enrolled. */
  readonly publicKey: Uint8Array | null;
  readonly revoked: boolean;
}

export const deviceKeyCacheLimits = Object.freeze({
  /** Devices kept: the devices that send telemetry at once, as the gateway's connectionsMax. */
  entriesMax: 10_000,
  /**
   * How long a row is trusted. This service drops a device's entry when it enrolls, renews or
   * revokes it, so this only bounds how long a change made by another process (a second control
   * plane on the same MySQL) goes unseen.
   */
  ttlMs: 1_000,
});

/**
 * The device key and revocation status behind verifyDeviceFrame, so the telemetry writer does not
 * read the devices row once per sample. Invalidation bumps a generation: a read that began before
 * an invalidation never stores its (possibly stale) row.
 */
export class DeviceKeyCache {
  readonly #entries = new BoundedLru<string, { record: DeviceKeyRecord; fetchedAtMs: number }>(deviceKeyCacheLimits.entriesMax);
  #generation = 0;

  constructor(private readonly clock: Clock, private readonly load: (deviceId: string) => Promise<DeviceKeyRecord>) {}

  async get(deviceId: string): Promise<DeviceKeyRecord> {
    const nowMs = this.clock.nowMs();
    const cached = this.#entries.get(deviceId);
    if (cached !== undefined && nowMs - cached.fetchedAtMs < deviceKeyCacheLimits.ttlMs && nowMs >= cached.fetchedAtMs) return cached.record;
    const generation = this.#generation;
    const record = await this.load(deviceId);
    if (generation === this.#generation) this.#entries.set(deviceId, { record, fetchedAtMs: nowMs });
    return record;
  }

  /** After a change to the device's key or status has committed. */
  invalidate(): void {
    this.#generation += 1;
    this.#entries.clear();
  }
}
