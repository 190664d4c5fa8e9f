import { createHash } from 'node:crypto';
import { crlPemCharsMax } from '../../trust/crl.js';
import { revocationEntriesMaxDefault } from '../../trust/revocation.js';
import type { KeyValueStore } from '../stores/kv/kv-port.js';

/**
 * The gateways' shared CRL record (decision 0021) in a form that holds a CRL of the revocation
 * store's maximum: a small head (`kvKeys.gatewayCrlHead`: version, CRL number, SHA-256 of the PEM,
 * part count) and the PEM in parts (`kvKeys.gatewayCrlPart`, named by that digest). One key held the
 * whole PEM until 2026-12-06 and stopped at about 14,000 entries (the stores' 1 MiB value limit);
 * a CRL of 100,000 entries is about 6.6 MB (7.6 MB at the largest entries), 13 to 15 parts.
 *
 * The head is what every gateway reads at each reload (under 100 bytes); the parts only when the
 * head names a CRL the gateway has not verified, so a fleet of gateways does not pull megabytes
 * from the store every minute. Nothing here is trusted: the head's number only decides whether to
 * read the parts, and the caller verifies the text as our intermediate's CRL, its number equal to
 * the head's. Every read is bounded (getBounded): a value a store writer made larger is answered by
 * its size only, never read (review h13, finding 1).
 */

/** Characters per part: half the stores' default value limit (1 MiB, STORE_LIMIT past it). PEM is ASCII. */
export const crlRecordPartCharsMax = 512 * 1024;
/** The largest CRL the record holds: that of the revocation store's maximum entries (7,588,928 characters). */
export const crlRecordCharsMax = crlPemCharsMax(revocationEntriesMaxDefault);
/** Parts of the largest CRL: 15. A head naming more is not read further. */
export const crlRecordPartsMax = Math.ceil(crlRecordCharsMax / crlRecordPartCharsMax);
/** A head is `crl1 <number> <sha256 hex> <parts>`: a CRL number is at most 49 digits (below 2^159). */
export const crlRecordHeadCharsMax = 128;
/**
 * Parts outlive the head that names them by at most this: each write sets it, and a head whose
 * parts expired (a week without a new CRL) is written again by a gateway holding its CRL. A
 * gateway that ends between writing parts and the head leaves parts no head names; they go then.
 */
export const crlRecordPartTtlMs = 7 * 24 * 60 * 60 * 1000;

const headPattern = /^crl1 ([0-9]{1,49}) ([0-9a-f]{64}) ([0-9]{1,3})$/;

export interface CrlRecordHead {
  /** As the head says: not trusted until the parts verify with this number. */
  readonly crlNumber: bigint;
  readonly sha256: string;
  readonly parts: number;
  /** The head's text, for compare-and-set. */
  readonly text: string;
}

export type CrlRecordHeadRead =
  | { readonly state: 'absent' }
  | { readonly state: 'head'; readonly head: CrlRecordHead }
  | { readonly state: 'invalid'; readonly reason: 'too-large' | 'not-a-head'; readonly bytes: number; readonly text?: string };

export type CrlRecordBodyRead =
  | { readonly state: 'text'; readonly text: string }
  /** A part is gone (expired, evicted, or removed by a writer of a newer head meanwhile): not the head's fault. */
  | { readonly state: 'missing' }
  | { readonly state: 'invalid'; readonly reason: 'too-large' | 'digest-mismatch'; readonly bytes: number };

/** The keys the record lives under: kvKeys.gatewayCrlHead and kvKeys.gatewayCrlPart. */
export interface CrlRecordKeys {
  readonly head: string;
  readonly part: (sha256: string, index: number) => string;
}

/** The head for `text`, a CRL numbered `crlNumber`. */
export function crlRecordHead(text: string, crlNumber: bigint): CrlRecordHead {
  const sha256 = sha256Hex(text);
  const parts = Math.max(1, Math.ceil(text.length / crlRecordPartCharsMax));
  return { crlNumber, sha256, parts, text: `crl1 ${crlNumber.toString()} ${sha256} ${parts}` };
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Reads and writes the record's keys; every judgement of what they hold is the caller's. */
export class CrlRecordStore {
  constructor(private readonly kv: KeyValueStore, private readonly keys: CrlRecordKeys) {}

  async readHead(): Promise<CrlRecordHeadRead> {
    const read = await this.kv.getBounded(this.keys.head, crlRecordHeadCharsMax);
    if (read.state === 'absent') return read;
    if (read.state === 'tooLarge') return { state: 'invalid', reason: 'too-large', bytes: read.bytes };
    const match = headPattern.exec(read.value);
    const parts = match === null ? 0 : Number(match[3]);
    if (match === null || parts < 1 || parts > crlRecordPartsMax) return { state: 'invalid', reason: 'not-a-head', bytes: read.value.length, text: read.value };
    return { state: 'head', head: { crlNumber: BigInt(match[1]!), sha256: match[2]!, parts, text: read.value } };
  }

  /** The PEM the head names, its digest checked; each part read bounded, all at once. */
  async readBody(head: CrlRecordHead): Promise<CrlRecordBodyRead> {
    const reads = await Promise.all(Array.from({ length: head.parts }, (_, index) => this.kv.getBounded(this.keys.part(head.sha256, index), crlRecordPartCharsMax)));
    const texts: string[] = [];
    for (const read of reads) {
      if (read.state === 'absent') return { state: 'missing' };
      if (read.state === 'tooLarge') return { state: 'invalid', reason: 'too-large', bytes: read.bytes };
      texts.push(read.value);
    }
    const text = texts.join('');
    if (sha256Hex(text) !== head.sha256) return { state: 'invalid', reason: 'digest-mismatch', bytes: text.length };
    return { state: 'text', text };
  }

  /** Writes the parts of `text` (idempotent: named by its digest), with their TTL. */
  async writeParts(text: string, head: CrlRecordHead): Promise<void> {
    await Promise.all(Array.from({ length: head.parts }, (_, index) => this.kv.set(
      this.keys.part(head.sha256, index), text.slice(index * crlRecordPartCharsMax, (index + 1) * crlRecordPartCharsMax), { ttlMs: crlRecordPartTtlMs })));
  }

  /** Points the head at `head` when it still holds `expected` (null: absent). True if written. */
  async writeHead(head: CrlRecordHead, expected: string | null): Promise<boolean> {
    return expected === null
      ? this.kv.set(this.keys.head, head.text, { onlyIfAbsent: true })
      : this.kv.compareAndSet(this.keys.head, expected, head.text);
  }

  /** Removes a head above the bound without reading it (a compare-and-set would send it back). */
  async removeOversizedHead(): Promise<void> {
    await this.kv.deleteIfLarger(this.keys.head, crlRecordHeadCharsMax);
  }

  /** Removes the parts of a head no longer named (after the head moved past it). */
  async removeParts(head: CrlRecordHead): Promise<void> {
    await Promise.all(Array.from({ length: head.parts }, (_, index) => this.kv.del(this.keys.part(head.sha256, index))));
  }
}
