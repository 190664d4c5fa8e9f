import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../../core/errors/index.js';
import { evaluateThresholds, MetricSet, parseThreshold } from './thresholds.js';

function metrics(): MetricSet {
  const set = new MetricSet({ latency_ms: 'trend', ok: 'rate', refused: 'counter' });
  for (let i = 1; i <= 100; i++) set.add('latency_ms', i);
  for (let i = 0; i < 100; i++) set.add('ok', i !== 0);
  set.add('refused', 2);
  return set;
}

test('thresholds: k6 expressions over trends, rates and counters, crossed or held', () => {
  const results = evaluateThresholds({
    latency_ms: ['p(99)<100', 'p(99)<99', 'med<=50', 'avg==50.5', 'max<100', 'min>=1'],
    ok: ['rate>0.99', 'rate>=0.99'],
    refused: ['count<1', 'rate<=1'],
  }, metrics(), 2_000);
  assert.deepEqual(results.map((r) => [r.threshold, r.value, r.crossed]), [
    ['p(99)<100', 99, false], ['p(99)<99', 99, true], ['med<=50', 50, false], ['avg==50.5', 50.5, false], ['max<100', 100, true], ['min>=1', 1, false],
    ['rate>0.99', 0.99, true], ['rate>=0.99', 0.99, false],
    ['count<1', 2, true], ['rate<=1', 1, false],
  ]);
});

test('thresholds: an empty metric aggregates to 0, as in k6 (a success rate with no sample fails)', () => {
  const empty = new MetricSet({ latency_ms: 'trend', ok: 'rate' });
  assert.deepEqual(evaluateThresholds({ latency_ms: ['p(99)<10'], ok: ['rate>0.5'] }, empty, 1_000).map((r) => r.crossed), [false, true]);
});

test('thresholds: malformed expressions, wrong aggregates and unknown metrics are usage errors', () => {
  for (const bad of ['p99<1', 'p(0)<1', 'p(101)<1', 'avg<', 'rate ~ 1', 'sum<3']) {
    assert.throws(() => parseThreshold(bad), (e: unknown) => SdcError.is(e) && e.code === 'CLI_USAGE', bad);
  }
  assert.throws(() => evaluateThresholds({ ok: ['p(99)<1'] }, metrics(), 1), (e: unknown) => SdcError.is(e) && e.code === 'CLI_USAGE');
  assert.throws(() => evaluateThresholds({ nope: ['rate<1'] }, metrics(), 1), (e: unknown) => SdcError.is(e) && /records latency_ms, ok, refused/.test(e.message));
});

test('thresholds: a gauge (k6 vus) takes value (the last reading), min and max, and nothing a trend or counter takes', () => {
  const set = new MetricSet({ vus: 'gauge' });
  for (const reading of [0, 3, 5, 2]) set.add('vus', reading);
  assert.deepEqual(evaluateThresholds({ vus: ['value==2', 'max<5', 'min>=0'] }, set, 1_000).map((r) => [r.threshold, r.value, r.crossed]), [
    ['value==2', 2, false], ['max<5', 5, true], ['min>=0', 0, false],
  ]);
  for (const wrong of ['p(95)<1', 'count<1', 'avg<1']) {
    assert.throws(() => evaluateThresholds({ vus: [wrong] }, set, 1_000), (e: unknown) => SdcError.is(e) && /a gauge takes value, min, max/.test(e.message), wrong);
  }
  assert.throws(() => evaluateThresholds({ refused: ['value<1'] }, metrics(), 1), (e: unknown) => SdcError.is(e) && /a counter takes count, rate/.test(e.message));
});
