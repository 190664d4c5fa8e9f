import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { escapeXml, niceTicks, svgBarPlot, svgDataUrl, svgLinePlot, svgPointsMax } from './svg-plot.js';

describe('SVG plots', () => {
  it('draws each series as a polyline scaled into the frame, with its legend, ticks and labels', () => {
    const svg = svgLinePlot({ title: 'Online agents', xLabel: 'virtual s', yLabel: 'agents', series: [
      { label: 'online', stroke: '#1a7f37', points: [[0, 3], [1, 2], [2, 3]] },
    ] });
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<title>Online agents<\/title>/);
    const points = /<polyline[^>]* points="([^"]+)"/.exec(svg)?.[1]?.split(' ').map((p) => p.split(',').map(Number));
    assert.equal(points?.length, 3);
    // x 0 at the left edge (64), x 2 at the right (704); y 3 at the top (36), y 2 lower.
    assert.deepEqual(points?.[0], [64, 36]);
    assert.deepEqual(points?.[2], [704, 36]);
    assert.ok(points![1]![1]! > 36);
    assert.match(svg, />virtual s</);
    assert.match(svg, />agents</);
    assert.match(svg, /stroke="#1a7f37"[^>]*\/><text[^>]*>online</);
  });

  it('breaks a line at a null, and thins a huge series', () => {
    const svg = svgLinePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ label: 's', stroke: '#000', points: [[0, 1], [1, null], [2, 1], [3, 2]] }] });
    assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
    const big = svgLinePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ label: 's', stroke: '#000', points: Array.from({ length: 50_000 }, (_, i) => [i, i % 7] as [number, number]) }] });
    const drawn = /points="([^"]+)"/.exec(big)![1]!.split(' ').length;
    assert.ok(drawn <= svgPointsMax + 1, `${drawn} points drawn`);
  });

  it('escapes every text from a file, so a label cannot become markup', () => {
    const svg = svgLinePlot({ title: '<script>x</script>', xLabel: 'a&b', yLabel: '"q"', series: [{ label: '</text><script>', stroke: '"/><script>', points: [[0, 1]] }] });
    assert.doesNotMatch(svg, /<script/);
    assert.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&apos;');
    const bars = svgBarPlot({ title: 'b', unit: '<u>', bars: [{ label: '<img>', value: 2 }] });
    assert.doesNotMatch(bars, /<img|<u>/);
  });

  it('draws bars proportional to their values, the largest full width', () => {
    const svg = svgBarPlot({ title: 'calls per second', unit: 'calls/s', bars: [{ label: 'mock', value: 40_000 }, { label: 'native', value: 10_000 }] });
    const widths = [...svg.matchAll(/<rect x="220"[^>]* width="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.equal(widths.length, 2);
    assert.equal(widths[0]! / widths[1]!, 4);
    assert.match(svg, />40000 calls\/s</);
  });

  it('picks round ticks and makes a data URL an <img> can show', () => {
    assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(niceTicks(0, 0.9, 3), [0, 0.5]);
    assert.deepEqual(niceTicks(5, 5), [5]);
    assert.ok(svgDataUrl('<svg/>').startsWith('data:image/svg+xml;charset=utf-8,%3Csvg%2F%3E'));
  });
});
