/** Display helpers shared by the views; pure, so they are tested in Node. */
import { visibleJson, visibleText } from './visible-text.js';

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** "12 s ago", "3 min ago", or the time itself past a day. */
export function formatAgo(ms: number | null | undefined, nowMs: number): string {
  if (ms === null || ms === undefined) return 'never';
  const seconds = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatTime(ms);
}

/**
 * A value in a table cell (a device's command result, a run file's field): strings and numbers as
 * they are, anything else as compact JSON, with control, bidi and zero-width characters escaped
 * (visibleText): a device chose every character of its result.
 */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return visibleText(value);
  return visibleJson(value);
}

/** The columns of a table of objects: every key, in first-seen order (bounded, so a huge row cannot blow up the page). */
export function tableColumns(rows: readonly unknown[], columnsMax = 16): string[] {
  const columns: string[] = [];
  for (const row of rows) {
    if (typeof row !== 'object' || row === null || Array.isArray(row)) continue;
    for (const key of Object.keys(row)) {
      if (!columns.includes(key)) columns.push(key);
      if (columns.length >= columnsMax) return columns;
    }
  }
  return columns;
}

/** True for a non-empty array whose every element is a plain object: rendered as a table. */
export function isTable(value: unknown): value is ReadonlyArray<Record<string, unknown>> {
  return Array.isArray(value) && value.length > 0 && value.every((row) => typeof row === 'object' && row !== null && !Array.isArray(row));
}

/** A risk score (0..100, from the device's newest telemetry sample) as shown; "—" before any. */
export function riskText(score: number | null | undefined): string {
  return score === null || score === undefined || !Number.isFinite(score) ? '—' : String(Math.round(score));
}

/** The band a risk score is drawn in; the alert rule's default threshold (80) starts "high". */
export function riskBand(score: number | null | undefined): 'none' | 'low' | 'medium' | 'high' {
  if (score === null || score === undefined || !Number.isFinite(score)) return 'none';
  return score >= 80 ? 'high' : score >= 50 ? 'medium' : 'low';
}

/** Highest risk first; devices without a score last; ties by id so the order is stable. */
export function compareByRisk(a: { id: string; risk_score?: number | null }, b: { id: string; risk_score?: number | null }): number {
  const left = a.risk_score ?? -1;
  const right = b.risk_score ?? -1;
  return right - left || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
