import type { ArtifactRecord } from '../core/ota/artifact-record.js';
import { isDeviceId } from '../core/protocol/device-id.js';
import { formatTime } from './format.js';
import { visibleText } from './visible-text.js';

export type { ArtifactRecord };

/**
 * The artifacts view's logic (docs/artifacts.md; GET /v1/artifacts): what each row shows and
 * what a download is saved as. Pure, so it is tested in Node without a browser.
 */
export interface ArtifactRow {
  readonly id: string;
  readonly deviceId: string;
  readonly kind: string;
  readonly state: string;
  /** The plaintext size the device's signed result reports, as shown; "—" before an upload. */
  readonly size: string;
  /** Of the sealed upload: the first 12 hex digits shown, the whole in `digestFull`. */
  readonly digest: string;
  readonly digestFull: string;
  /** When and by whom, as shown (the name through visibleText); the other fields stay raw, for links and attributes, and the view escapes what it shows of them. */
  readonly created: string;
  /** Only a succeeded command with an upload has something to download. */
  readonly downloadable: boolean;
}

/** The most the console holds of one download in page memory (the control plane's own limit is 16 MiB). */
export const artifactDownloadBytesMax = 64 * 1024 * 1024;

/** 0 B, 999 B, 1.5 KiB, 16.0 MiB: binary units, one decimal past bytes. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return '—';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'] as const;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function artifactRow(record: ArtifactRecord): ArtifactRow {
  const uploaded = record.state === 'succeeded' && record.sha256 !== null;
  return {
    id: record.id, deviceId: record.device_id, kind: record.kind, state: record.state,
    size: uploaded ? formatBytes(record.plaintext_length) : '—',
    digest: uploaded ? `${record.sha256!.slice(0, 12)}…` : '—', digestFull: uploaded ? record.sha256! : '',
    created: `${formatTime(record.created_at_ms)} by ${visibleText(record.created_by)}`, downloadable: uploaded,
  };
}

const extensions: Readonly<Record<string, string>> = { 'image/png': 'png', 'text/plain; charset=utf-8': 'log' };

/** `<device>-<artifact id>.<png|log|bin>`, with anything but [A-Za-z0-9._-] replaced, at most 128 characters. */
export function artifactFileName(record: Pick<ArtifactRecord, 'id' | 'device_id' | 'content_type'>): string {
  const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, '_');
  const extension = extensions[record.content_type ?? ''] ?? 'bin';
  return `${safe(record.device_id).slice(0, 60)}-${safe(record.id).slice(0, 60)}.${extension}`;
}

/** The list's query: a device filter only when it is a plausible device id (the API would refuse it otherwise). */
export function artifactListPath(deviceFilter: string, limit = 200): string {
  const query = new URLSearchParams({ limit: String(limit) });
  const device = deviceFilter.trim();
  if (isDeviceId(device)) query.set('device_id', device);
  return `/v1/artifacts?${query.toString()}`;
}
