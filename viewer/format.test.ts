import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cellText, compareByRisk, formatAgo, formatTime, isTable, riskBand, riskText, tableColumns } from './format.js';

describe('viewer formatting', () => {
  it('says how long ago, and the time itself past a day', () => {
    const now = Date.UTC(2026, 0, 2, 12, 0, 0);
    assert.equal(formatAgo(now - 5_000, now), '5 s ago');
    assert.equal(formatAgo(now - 180_000, now), '3 min ago');
    assert.equal(formatAgo(now - 7_200_000, now), '2 h ago');
    assert.equal(formatAgo(now - 2 * 86_400_000, now), '2025-12-31 12:00:00Z');
    assert.equal(formatAgo(null, now), 'never');
    assert.equal(formatTime(undefined), '—');
  });

  it('builds a table from a process list: every column in first-seen order, bounded', () => {
    const rows = [{ pid: 1, name: 'init' }, { pid: 2, name: 'sh', user: 'root' }];
    assert.equal(isTable(rows), true);
    assert.deepEqual(tableColumns(rows), ['pid', 'name', 'user']);
    assert.deepEqual(tableColumns([Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i]))]).length, 16);
    assert.equal(isTable([]), false);
    assert.equal(isTable([1, 2]), false);
    assert.equal(cellText({ a: 1 }), '{"a":1}');
    assert.equal(cellText(null), '');
  });

  it('shows a risk score rounded, "—" without one, in bands, and sorts highest first with unscored devices last', () => {
    assert.equal(riskText(81.4), '81');
    assert.equal(riskText(null), '—');
    assert.equal(riskText(undefined), '—');
    assert.deepEqual([null, 10, 50, 79.9, 80, 100].map(riskBand), ['none', 'low', 'medium', 'medium', 'high', 'high']);
    const rows = [{ id: 'c', risk_score: null }, { id: 'b', risk_score: 40 }, { id: 'a', risk_score: 90 }, { id: 'd', risk_score: 40 }, { id: 'e' }];
    assert.deepEqual([...rows].sort(compareByRisk).map((row) => row.id), ['a', 'b', 'd', 'c', 'e']);
  });
});
