import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchBars, benchNumericFields, faultWindowsOf, latencyCdf, parseBenchJson, parseNumericCsv, recoveryCurves, runFileKind } from './research-data.js';

describe('research view data', () => {
  it('reads the simulator\'s CSVs as numeric columns', () => {
    const table = parseNumericCsv('t_ms,online_agents\n1000,20\r\n2000,19\n\n');
    assert.deepEqual(table, { columns: ['t_ms', 'online_agents'], values: [[1000, 2000], [20, 19]] });
  });

  it('refuses what is not a numeric table, naming the line', () => {
    assert.throws(() => parseNumericCsv(''), /empty/);
    assert.throws(() => parseNumericCsv('a,b\n1\n'), /line 2 has 1 cells/);
    assert.throws(() => parseNumericCsv('a,b\n1,x\n'), /line 2, column b: "x" is not a number/);
    assert.throws(() => parseNumericCsv('a,b\n1,\n'), /is not a number/);
  });

  it('turns the latency histogram into a CDF', () => {
    const cdf = latencyCdf(parseNumericCsv('le_ms,count\n10,0\n50,50\n100,25\n1000,25\n'));
    assert.deepEqual(cdf, { boundsMs: [10, 50, 100, 1000], fraction: [0, 0.5, 0.75, 1] });
    assert.deepEqual(latencyCdf(parseNumericCsv('le_ms,count\n10,0\n')).fraction, [0]);
    assert.throws(() => latencyCdf(parseNumericCsv('x,y\n1,2\n')), /le_ms and count/);
  });

  it('knows the run\'s files by their names', () => {
    assert.equal(runFileKind('out/summary.json'), 'summary');
    assert.equal(runFileKind('online-agents.csv'), 'online');
    assert.equal(runFileKind('commands-by-state.csv'), 'states');
    assert.equal(runFileKind('C:\\runs\\latency-histogram.csv'), 'latency');
    assert.equal(runFileKind('notes.txt'), undefined);
    assert.equal(runFileKind('bench/ioctl.json'), 'bench');
  });

  it('reads a bench report (docs/benchmarks.md "Output"), its plottable fields and one bar per row', () => {
    const bench = parseBenchJson({
      benchmark: 'ioctl', schema_version: 1, environment: { node: 'v20' }, parameters: { calls: 100 },
      results: [{ backend: 'mock', opcode: 'EXEC_PING_KERNEL', calls: 100, calls_per_s: 41000, p50_us: 22.1 }, { backend: 'native', opcode: 'EXEC_PING_KERNEL', calls: 100, calls_per_s: 9000, p50_us: 90 }],
      units: { calls: 'calls', calls_per_s: 'calls per second', p50_us: 'microseconds' },
    });
    assert.deepEqual(benchNumericFields(bench), ['calls', 'calls_per_s', 'p50_us']);
    assert.deepEqual(benchBars(bench, 'calls_per_s'), [{ label: 'mock EXEC_PING_KERNEL', value: 41000 }, { label: 'native EXEC_PING_KERNEL', value: 9000 }]);
    assert.throws(() => parseBenchJson([]), /not a JSON object/);
    assert.throws(() => parseBenchJson({ seed: 1 }), /benchmark/);
    assert.throws(() => parseBenchJson({ benchmark: 'x', results: [1], units: {} }), /results/);
    assert.throws(() => parseBenchJson({ benchmark: 'x', results: [], units: { a: 1 } }), /units/);
  });

  it('finds the run\'s faults in its summary and plots the agents missing after each until they are back', () => {
    const summary = { resolvedScenario: { faults: {
      gatewayRestarts: [{ gateway: 'gw-1', atMs: 2000, downMs: 1000 }],
      partitions: [{ atMs: 5000, durationMs: 500 }, { atMs: 'x', durationMs: 1 }],
      busOutages: [{ atMs: 9000, durationMs: 0 }],
    } } };
    const windows = faultWindowsOf(summary);
    assert.deepEqual(windows, [{ name: 'restart gw-1', startMs: 2000, endMs: 3000 }, { name: 'partition 1', startMs: 5000, endMs: 5500 }]);
    assert.deepEqual(faultWindowsOf({}), []);
    const online = parseNumericCsv('t_ms,online_agents\n1000,10\n2000,10\n2500,4\n3000,6\n3500,10\n4000,10\n5000,10\n5500,9\n6000,10\n');
    assert.deepEqual(recoveryCurves(windows, online), [
      { name: 'restart gw-1', points: [[0, 0], [0.5, 6], [1, 4], [1.5, 0]] },
      { name: 'partition 1', points: [[0, 0], [0.5, 1], [1, 0]] },
    ]);
    assert.deepEqual(recoveryCurves([{ name: 'early', startMs: 500, endMs: 900 }], online), [], 'no sample before the fault: no curve');
  });
});
