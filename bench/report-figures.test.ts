import { test } from 'node:test';
import assert from 'node:assert/strict';
import { niceTicks, renderLineChartSvg } from './report-figures.js';

/** The x-axis tick labels of a line chart (the text row under the plot, 360 px high: y 306). */
const xTickLabels = (svg: string) => [...svg.matchAll(/<text x="[\d.]+" y="306" text-anchor="middle">([^<]*)<\/text>/g)].map((m) => m[1]);
/** The y-axis tick labels (right-aligned at the plot's left edge). */
const yTickLabels = (svg: string) => [...svg.matchAll(/<text x="58" y="[\d.]+" text-anchor="end">([^<]*)<\/text>/g)].map((m) => m[1]);

test('niceTicks: steps of 1, 2 or 5 times a power of ten, at most seven, inside the range', () => {
  assert.deepEqual(niceTicks(0, 1.558), [0, 0.5, 1, 1.5]);
  assert.deepEqual(niceTicks(0, 4), [0, 1, 2, 3, 4]);
  assert.deepEqual(niceTicks(0, 61), [0, 20, 40, 60]);
  assert.deepEqual(niceTicks(0, 0.3), [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
  assert.deepEqual(niceTicks(1, 300), [50, 100, 150, 200, 250, 300]);
  assert.deepEqual(niceTicks(3.7, 12.2), [4, 6, 8, 10, 12]);
  assert.deepEqual(niceTicks(0, 5), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(niceTicks(2, 2), [2]);
  for (const [from, to] of [[0, 1.558], [0, 733.4], [12.5, 13.01], [0, 1e6 + 3]] as const) {
    const ticks = niceTicks(from, to);
    assert.ok(ticks.length >= 3 && ticks.length <= 7, `${ticks.length} ticks over ${from}-${to}`);
    assert.ok(ticks[0]! >= from && ticks.at(-1)! <= to);
  }
});

test('a line chart over 1.558 s labels its x axis 0, 0.5, 1, 1.5 (not the span\'s quarters 0.39, 0.779), its y axis in round steps', () => {
  const svg = renderLineChartSvg({ title: 't', xLabel: 'seconds', yLabel: 'per second', xMin: 0, series: [{ name: 'a', points: [[0.39, 3], [0.779, 4.5], [1.558, 1]] }] });
  assert.deepEqual(xTickLabels(svg), ['0', '0.5', '1', '1.5']);
  assert.deepEqual(yTickLabels(svg), ['0', '1', '2', '3', '4', '5']);
});
