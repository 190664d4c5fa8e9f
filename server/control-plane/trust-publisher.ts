import { kvKeys, revocationChannel, type RevocationNotice } from '../bus-contract/streams.js';
import type { ServiceContext } from './context.js';

/** Rows read per query when everything is re-published from SQL. */
const publishBatchRows = 500;
/** The key/value ports refuse TTLs above 10 years; a certificate's key never needs more. */
const certificateKeyTtlMsMax = 10 * 365 * 24 * 3600 * 1000 - 1;

export interface TrustPublishCounts {
  /** Enrolled devices whose kvKeys.device was set. */
  readonly devices: number;
  /** Current certificates whose kvKeys.deviceCertificate was set. */
  readonly certificates: number;
  /** Revoked serials whose kvKeys.revoked was set. */
  readonly revoked: number;
}

interface EnrolledRow { id: string; cert_serial: string; cert_not_after: number | null; revoked_serial: string | null }
interface CertificateRow { device_id: string; serial: string; not_after: number }

/**
 * What the gateways admit by, in the key/value store: which devices are enrolled
 * (kvKeys.device), which certificates are theirs now (kvKeys.deviceCertificate), which serials
 * are revoked (kvKeys.revoked), and a notice on revocationChannel so open sessions end at once.
 * SQL is the authority and the key/value store only a copy that may be lost (Redis restarted
 * without persistence, FLUSHALL, a new embedded process): `publishAll` writes the copy again from
 * SQL, at start, periodically, and as soon as `publishIfWiped` finds the marker key gone. Keys
 * are only ever added by a pass, never deleted (revocation deletes), so a pass racing a
 * revocation can at worst set back a key that the revoked serial's key still refuses.
 */
export class TrustPublisher {
  readonly #ctx: ServiceContext;

  constructor(context: ServiceContext) {
    this.#ctx = context;
  }

  /** A certificate issued through enrollment or renewal: the device is enrolled and this serial is its. Call after SQL holds it. */
  async certificateIssued(deviceId: string, serial: string, notAfterMs: number): Promise<void> {
    await this.#setCertificate(deviceId, serial, notAfterMs);
    await this.#ctx.kv.set(kvKeys.device(deviceId), serial);
  }

  /**
   * Certificates revoked in SQL (already committed): their revoked keys, their certificate keys
   * gone, and a notice so every gateway closes their sessions. The notice is at most once
   * (pub/sub); a gateway that missed it finds the revoked key at its next session re-check.
   */
  async certificatesRevoked(deviceId: string, serials: readonly string[], nowMs: number): Promise<void> {
    if (serials.length === 0) return;
    for (const serial of serials) {
      await this.#ctx.kv.set(kvKeys.revoked(serial), String(nowMs));
      await this.#ctx.kv.del(kvKeys.deviceCertificate(serial));
    }
    const notice: RevocationNotice = { device_id: deviceId, serials };
    try {
      await this.#ctx.kv.publish(revocationChannel, JSON.stringify(notice));
    } catch (error) {
      this.#ctx.logger.error({ err: error, deviceId }, 'revocation notice not published; gateways close the sessions at their next re-check');
    }
  }

  /** The device is no longer enrolled (revoked as a whole). */
  async deviceRevoked(deviceId: string): Promise<void> {
    await this.#ctx.kv.del(kvKeys.device(deviceId));
  }

  /** Re-publishes everything from SQL (revoked serials first, so a stale certificate key is never alone), then the marker. */
  async publishAll(): Promise<TrustPublishCounts> {
    const revoked = await this.#publishRevoked();
    const { devices, certificates } = await this.#publishEnrolled();
    await this.#ctx.kv.set(kvKeys.trustPublished, String(this.#ctx.clock.nowMs()));
    return { devices, certificates, revoked };
  }

  /** Re-publishes everything when the marker key is gone (the store lost its data); returns the counts, or undefined when nothing was lost. */
  async publishIfWiped(): Promise<TrustPublishCounts | undefined> {
    if ((await this.#ctx.kv.get(kvKeys.trustPublished)) !== null) return undefined;
    this.#ctx.logger.warn('the key/value store lost the published trust state (restart without persistence, FLUSHALL?); re-publishing from SQL');
    return this.publishAll();
  }

  /**
   * Revoked serials whose certificate has not expired (or whose notAfter is unknown: revoked by
   * serial alone): an expired certificate fails the TLS check anyway, so the pass does not grow
   * with the revocation history, and each key lives until its certificate's notAfter.
   */
  async #publishRevoked(): Promise<number> {
    let count = 0;
    const nowMs = this.#ctx.clock.nowMs();
    for (let after = ''; ;) {
      const rows = await this.#ctx.db.query<{ serial: string; revoked_at: number; not_after: number | null }>(
        `SELECT r.serial, r.revoked_at, c.not_after FROM revocations r LEFT JOIN device_certificates c ON c.serial = r.serial
         WHERE r.serial > ? ORDER BY r.serial ASC LIMIT ?`, [after, publishBatchRows]);
      for (const row of rows) {
        const ttlMs = row.not_after === null ? undefined : Math.min(Number(row.not_after) - nowMs, certificateKeyTtlMsMax);
        if (ttlMs !== undefined && ttlMs < 1) continue;
        await this.#ctx.kv.set(kvKeys.revoked(row.serial), String(row.revoked_at), ttlMs === undefined ? {} : { ttlMs });
        count += 1;
      }
      const last = rows.at(-1);
      if (rows.length < publishBatchRows || last === undefined) return count;
      after = last.serial;
    }
  }

  async #publishEnrolled(): Promise<{ devices: number; certificates: number }> {
    let devices = 0;
    let certificates = 0;
    for (let after = ''; ;) {
      const rows = await this.#ctx.db.query<EnrolledRow>(
        `SELECT d.id, d.cert_serial, d.cert_not_after, r.serial AS revoked_serial FROM devices d LEFT JOIN revocations r ON r.serial = d.cert_serial
         WHERE d.id > ? AND d.status = 'enrolled' AND d.cert_serial IS NOT NULL ORDER BY d.id ASC LIMIT ?`,
        [after, publishBatchRows],
      );
      certificates += await this.#publishCertificatesOf(rows);
      for (const row of rows) await this.#ctx.kv.set(kvKeys.device(row.id), row.cert_serial);
      devices += rows.length;
      const last = rows.at(-1);
      if (rows.length < publishBatchRows || last === undefined) return { devices, certificates };
      after = last.id;
    }
  }

  /**
   * The unexpired, unrevoked certificates on record for these devices (a renewed device has two:
   * the new one and the one it renewed with), and each device's current one from `devices`.
   */
  async #publishCertificatesOf(devices: readonly EnrolledRow[]): Promise<number> {
    if (devices.length === 0) return 0;
    const nowMs = this.#ctx.clock.nowMs();
    const rows = await this.#ctx.db.query<CertificateRow>(
      `SELECT c.device_id, c.serial, c.not_after FROM device_certificates c LEFT JOIN revocations r ON r.serial = c.serial
       WHERE c.device_id IN (${devices.map(() => '?').join(', ')}) AND c.not_after > ? AND r.serial IS NULL`,
      [...devices.map((device) => device.id), nowMs],
    );
    const onRecord = new Set(rows.map((row) => row.serial));
    // Devices registered without a certificate row (the simulator inserts them directly).
    const current = devices.flatMap((device) => (device.revoked_serial === null && device.cert_not_after !== null && !onRecord.has(device.cert_serial)
      ? [{ device_id: device.id, serial: device.cert_serial, not_after: device.cert_not_after }] : []));
    let published = 0;
    for (const row of [...rows, ...current]) {
      if (await this.#setCertificate(row.device_id, row.serial, Number(row.not_after))) published += 1;
    }
    return published;
  }

  /** Lives until the certificate's notAfter; an expired one is not written (TLS refuses it anyway). */
  async #setCertificate(deviceId: string, serial: string, notAfterMs: number): Promise<boolean> {
    const ttlMs = Math.min(notAfterMs - this.#ctx.clock.nowMs(), certificateKeyTtlMsMax);
    if (ttlMs < 1) return false;
    await this.#ctx.kv.set(kvKeys.deviceCertificate(serial), deviceId, { ttlMs });
    return true;
  }
}
