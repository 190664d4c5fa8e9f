import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { escapeXml, latencyHistogramRows, renderBarChartSvg, renderCsv, renderMarkdownTable, writeReportFiles } from './report.js';

/**
 * A small XML well-formedness check (no parser is installed): one root element, tags nest and
 * close in order, attribute values are quoted, and `&` only starts a known entity or a
 * character reference. Returns the elements seen with their attributes.
 */
function parseXml(text: string): Array<{ name: string; attributes: Record<string, string> }> {
  const elements: Array<{ name: string; attributes: Record<string, string> }> = [];
  const stack: string[] = [];
  let roots = 0;
  const checkText = (chunk: string) => {
    assert.ok(!/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(chunk), `bad entity in ${JSON.stringify(chunk)}`);
  };
  let index = 0;
  while (index < text.length) {
    const open = text.indexOf('<', index);
    const chunk = open < 0 ? text.slice(index) : text.slice(index, open);
    checkText(chunk);
    if (stack.length === 0) assert.equal(chunk.trim(), '', 'text outside the root element');
    if (open < 0) break;
    const close = text.indexOf('>', open);
    assert.ok(close > open, 'unterminated tag');
    const tag = text.slice(open + 1, close);
    index = close + 1;
    if (tag.startsWith('/')) {
      assert.equal(stack.pop(), tag.slice(1).trim(), 'mismatched closing tag');
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const match = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*$/.exec(body);
    assert.ok(match, `malformed tag <${tag}>`);
    const attributes: Record<string, string> = {};
    for (const [, name, value] of match[2]!.matchAll(/([A-Za-z_][\w:.-]*)="([^"]*)"/g)) {
      assert.ok(!(name! in attributes), `duplicate attribute ${name}`);
      checkText(value!);
      attributes[name!] = value!;
    }
    if (stack.length === 0) roots += 1;
    elements.push({ name: match[1]!, attributes });
    if (!selfClosing) stack.push(match[1]!);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(roots, 1, 'exactly one root element');
  return elements;
}

const unescape = (text: string) => text.replaceAll('&quot;', '"').replaceAll('&apos;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

test('the bar chart is well-formed SVG with one bar per group and series, carrying its value', () => {
  const svg = renderBarChartSvg({
    title: 'baseline <vs> real & "more"', unit: 'ms', series: ['ws echo', 'command'],
    groups: [{ label: 'p50', values: [0.25, 12] }, { label: 'p90', values: [0.5, 30] }, { label: 'p99', values: [1, 80] }, { label: 'max', values: [2, 95.5] }],
  });
  const elements = parseXml(svg);
  assert.equal(elements[0]!.name, 'svg');
  const bars = elements.filter((e) => e.name === 'rect' && e.attributes.class === 'bar');
  assert.equal(bars.length, 8);
  assert.deepEqual(bars.map((b) => `${b.attributes['data-group']}/${b.attributes['data-series']}=${b.attributes['data-value']}`), [
    'p50/ws echo=0.25', 'p50/command=12', 'p90/ws echo=0.5', 'p90/command=30', 'p99/ws echo=1', 'p99/command=80', 'max/ws echo=2', 'max/command=95.5',
  ]);
  // Taller value, taller bar.
  const heights = bars.map((b) => Number(b.attributes.height));
  assert.ok(heights[7]! > heights[1]! && heights[1]! > heights[0]!);
  assert.match(svg, /<title>baseline &lt;vs&gt; real &amp; &quot;more&quot;<\/title>/);
});

test('any labels and values give well-formed SVG, on both scales', () => {
  fc.assert(fc.property(
    fc.array(fc.string({ maxLength: 12, unit: 'grapheme' }), { minLength: 1, maxLength: 4 }),
    fc.array(fc.record({ label: fc.string({ maxLength: 12 }), seed: fc.nat() }), { minLength: 1, maxLength: 6 }),
    fc.boolean(),
    fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 24, maxLength: 24 }),
    (series, groupSeeds, log, values) => {
      const groups = groupSeeds.map((g, i) => ({ label: g.label, values: series.map((_, s) => values[(i * 4 + s) % values.length]!) }));
      const svg = renderBarChartSvg({ title: 't', unit: 'ms', series, groups, scale: log ? 'log' : 'linear' });
      const bars = parseXml(svg).filter((e) => e.name === 'rect' && e.attributes.class === 'bar');
      assert.equal(bars.length, series.length * groups.length);
      for (const bar of bars) assert.ok(Number(bar.attributes.height) >= 0);
    },
  ), { numRuns: 200 });
});

test('a chart refuses values it cannot draw', () => {
  assert.throws(() => renderBarChartSvg({ title: 't', unit: 'ms', series: ['a'], groups: [{ label: 'x', values: [Number.NaN] }] }), RangeError);
  assert.throws(() => renderBarChartSvg({ title: 't', unit: 'ms', series: ['a', 'b'], groups: [{ label: 'x', values: [1] }] }), RangeError);
  assert.throws(() => renderBarChartSvg({ title: 't', unit: 'ms', series: [], groups: [] }), RangeError);
});

test('escapeXml drops characters XML forbids and escapes the five specials', () => {
  assert.equal(escapeXml('a\u0000b<&>"\'\uD800'), 'ab&lt;&amp;&gt;&quot;&apos;');
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (text) => {
    const escaped = escapeXml(text);
    parseXml(`<r a="${escaped}">${escaped}</r>`);
    assert.equal(unescape(escaped), text.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, ''));
  }), { numRuns: 300 });
});

test('CSV has the header then one line per row, quoting only where needed', () => {
  const csv = renderCsv(['name', 'p50_ms'], [['ws echo', 0.12345], ['a, "b"', 12]]);
  assert.equal(csv, 'name,p50_ms\nws echo,0.123\n"a, ""b""",12\n');
  const lines = renderCsv(['a', 'b', 'c'], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]).trimEnd().split('\n');
  assert.equal(lines.length, 4);
  assert.equal(lines[0], 'a,b,c');
});

test('the histogram puts every sample in exactly one bucket, the first whose edge is >= it', () => {
  const { header, rows } = latencyHistogramRows([{ name: 'x', samples: [0.05, 1, 1.5, 99_999] }, { name: 'y', samples: [] }], [1, 2]);
  assert.deepEqual(header, ['le_ms', 'x', 'y']);
  assert.deepEqual(rows, [[1, 2, 0], [2, 1, 0], ['+Inf', 1, 0]]);
  fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { maxLength: 200 }), (samples) => {
    const histogram = latencyHistogramRows([{ name: 's', samples }]);
    assert.equal(histogram.rows.reduce((sum, row) => sum + Number(row[1]), 0), samples.length);
  }), { numRuns: 200 });
});

test('Markdown tables right-align numeric columns and escape pipes', () => {
  assert.equal(renderMarkdownTable(['what', 'ms'], [['a|b', 1.5], ['c', 2]]), '| what | ms |\n| --- | ---: |\n| a\\|b | 1.5 |\n| c | 2 |\n');
});

test('report files are written under the directory and only under plain names', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-'));
  try {
    const paths = await writeReportFiles(join(dir, 'out'), { 'a.csv': 'x\n', 'b.md': '# b\n' });
    assert.deepEqual(paths, [join(dir, 'out', 'a.csv'), join(dir, 'out', 'b.md')]);
    assert.equal(await readFile(paths[1]!, 'utf8'), '# b\n');
    await assert.rejects(writeReportFiles(dir, { '../escape.txt': 'no' }), RangeError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
