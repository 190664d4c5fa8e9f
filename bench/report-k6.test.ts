import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readReportInputs } from './report-inputs.js';
import { buildReport } from './report-build.js';
import { parseK6Summary } from './report-k6.js';
import { k6HandleSummaryFixture, k6SummaryExportFixture } from './fixtures/k6-summary.js';

async function reportFrom(files: Record<string, unknown>): Promise<{ md: string; tex: string; inputs: Awaited<ReturnType<typeof readReportInputs>> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-k6-'));
  try {
    for (const [name, value] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value, null, 2));
    }
    const inputs = await readReportInputs(dir);
    const out = buildReport({ inputs, threats: [], command: 'sdc report --from runs' });
    return { md: out['report.md']!, tex: out['report.tex']!, inputs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a k6 --summary-export file is recognised by its shape and rendered as tables (Markdown and LaTeX), named by its file, wall-clock', async () => {
  const { md, tex, inputs } = await reportFrom({ 'k6/api-commands.json': k6SummaryExportFixture });
  assert.deepEqual(inputs.k6?.map((k) => k.path), ['k6/api-commands.json']);
  assert.deepEqual(inputs.skipped, []);
  assert.match(md, /### k6 summary: k6\/api-commands\.json\n/);
  assert.match(md, /From `k6\/api-commands\.json` \(k6's end-of-test summary, `k6 run --summary-export`\): 7 metrics, 5 thresholds, 1 failed\. .*Wall-clock\./);
  // Trend statistics in k6's order; a rate with passes/fails/value; a counter with count and rate.
  assert.match(md, /\| http_req_duration \| trend \| avg=12\.41 min=3\.108 med=10\.2 max=88\.5 p\(90\)=21\.7 p\(95\)=27\.94 p\(99\)=49\.1 \|/);
  assert.match(md, /\| http_req_failed \| rate \| passes=2 fails=1198 value=0\.00167 \|/);
  assert.match(md, /\| http_reqs \| counter \| count=1200 rate=19\.994 \|/);
  assert.match(md, /\| vus \| gauge \| value=3 min=1 max=10 \|/);
  // --summary-export's boolean means "failed": false is a pass, true a failure.
  assert.match(md, /\| sdc_command_terminal_ms \| `p\(50\)<2000` \| pass \|/);
  assert.match(md, /\| sdc_command_terminal_ms \| `p\(99\)<10000` \| FAIL \|/);
  assert.match(md, /\| command created \| 1198 \| 2 \|/);
  assert.match(md, /and 1 k6 summaries\./);
  assert.match(tex, /\\subsection\{k6 summary: k6\/api-commands\.json\}/);
  assert.match(tex, /^sdc\\_\S*terminal\S* & \\texttt\{p\(99\)\\textless\{\}10000\} & FAIL \\\\$/m);
  assert.match(tex, /^http\\_\S*reqs & counter & count=1200 rate=19\.994 \\\\$/m);
});

test('handleSummary\'s JSON (typed metrics, values, thresholds as { ok }) reads to the same figures and verdicts', () => {
  const summary = parseK6Summary(k6HandleSummaryFixture);
  assert.ok(typeof summary !== 'string', String(summary));
  assert.equal(summary.format, 'handleSummary');
  const terminal = summary.metrics.find((m) => m.name === 'sdc_command_terminal_ms')!;
  assert.deepEqual(terminal.thresholds, [{ expression: 'p(50)<2000', ok: true }, { expression: 'p(99)<10000', ok: false }]);
  const legacy = parseK6Summary(k6SummaryExportFixture);
  assert.ok(typeof legacy !== 'string');
  assert.deepEqual(legacy.metrics.find((m) => m.name === 'sdc_command_terminal_ms'), terminal);
  assert.deepEqual(summary.checks, legacy.checks);
});

test('a malformed k6 summary is refused with a reason naming the file, and the report still builds', async () => {
  const badStat = { root_group: { checks: [] }, metrics: { http_req_duration: { avg: 'fast', min: 1, med: 2, max: 3 } } };
  const badThreshold = { root_group: {}, metrics: { http_reqs: { count: 3, rate: 1, thresholds: { 'count<1': 'no' } } } };
  const noKind = { root_group: {}, metrics: { mystery: { foo: 1 } } };
  const { md, inputs } = await reportFrom({ 'a/bad-stat.json': badStat, 'b/bad-threshold.json': badThreshold, 'c/no-kind.json': noKind, 'd/empty.json': { root_group: {}, metrics: {} }, 'e/good.json': k6SummaryExportFixture });
  assert.deepEqual(inputs.skipped, [
    { path: 'a/bad-stat.json', reason: 'k6 summary: metric http_req_duration: statistic avg is not a number' },
    { path: 'b/bad-threshold.json', reason: 'k6 summary: metric http_reqs: threshold count<1 is neither a boolean nor { ok }' },
    { path: 'c/no-kind.json', reason: 'k6 summary: metric mystery has no trend, rate, counter or gauge statistics' },
    { path: 'd/empty.json', reason: 'a k6 summary with no metrics' },
  ]);
  assert.deepEqual(inputs.k6?.map((k) => k.path), ['e/good.json']);
  assert.match(md, /`a\/bad-stat\.json`: k6 summary: metric http_req_duration: statistic avg is not a number/);
});
