import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { latencyCdf, parseNumericCsv, runFileKind } from './research-data.js';

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
  });
});
