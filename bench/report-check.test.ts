import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latexProblems, markdownProblems, xmlProblems } from './report-check.js';
import { escapeLatex, latexInline, renderLatex, renderMarkdown, type ReportDocument } from './report-document.js';

const wrap = (body: string) => `\\documentclass{article}\n\\begin{document}\n${body}\n\\end{document}\n`;

test('the checkers catch what they are for (each one fails on a broken file)', () => {
  assert.deepEqual(xmlProblems('<svg><rect x="1"/></svg>'), []);
  assert.notDeepEqual(xmlProblems('<svg><rect x="1"></svg>'), []);
  assert.notDeepEqual(xmlProblems('<svg><text>a & b</text></svg>'), []);
  assert.notDeepEqual(xmlProblems('<svg/><svg/>'), []);
  assert.deepEqual(latexProblems(wrap('a \\& b \\texttt{x\\_y}')), []);
  assert.notDeepEqual(latexProblems(wrap('a_b')), []);
  assert.notDeepEqual(latexProblems(wrap('100%')), []);
  assert.notDeepEqual(latexProblems(wrap('\\textbf{open')), []);
  assert.notDeepEqual(latexProblems(wrap('\\begin{itemize}\n\\item x')), []);
  assert.notDeepEqual(latexProblems(wrap('\\begin{longtable}{rr}\na & b\n\\end{longtable}')), []);
  assert.deepEqual(markdownProblems('| a | b |\n| --- | --- |\n| 1 | 2 |\n'), []);
  assert.notDeepEqual(markdownProblems('| a | b |\n| --- | --- |\n| 1 |\n'), []);
  assert.notDeepEqual(markdownProblems('```mermaid\nx\n'), []);
});

test('LaTeX escaping: any text, code spans included, gives a structurally valid document', () => {
  const nasty = 'a_b & c% $d$ #e ^f ~g {h} \\i <j> |k| `x_y & z` **bold** \u2192 done';
  const doc: ReportDocument = {
    title: 'T_1 & co', sections: [{ title: 'S % 1', level: 1, blocks: [
      { kind: 'paragraph', text: nasty }, { kind: 'list', items: [nasty] },
      { kind: 'table', header: ['a_b', 'n'], rows: [[nasty, 1.5], ['', 2]] },
      { kind: 'code', language: 'mermaid', text: 'x --> y: a_b & c%\n\\end{verbatim}\n' },
      { kind: 'figure', file: 'fig-1.svg', caption: nasty },
    ] }],
  };
  assert.deepEqual(latexProblems(renderLatex(doc)), []);
  assert.deepEqual(markdownProblems(renderMarkdown(doc)), []);
  assert.equal(latexInline('`a_b/c`'), '\\texttt{a\\_\\allowbreak{}b/\\allowbreak{}c}');
  assert.equal(escapeLatex('\u2192'), '?');
});

const commit = '33a222141939c39af3af551967e13fbffd3971ba';
const traceHash = 'f20358513fe2680ff6103c9362a6a9124ce22483a03e4bcd61a9a1419972cb0f';

test('long tokens: a commit or hash TeX cannot break is refused; the writer breaks them in prose and shortens hashes in tables (report.md keeps them whole)', () => {
  assert.notDeepEqual(latexProblems(wrap(`commit \\texttt{${commit}}.`)), []);
  assert.notDeepEqual(latexProblems(wrap(`trace ${traceHash}.`)), []);
  // Long words are not hashes (roman type hyphenates them), nor are command names.
  assert.deepEqual(latexProblems(wrap('internationalization \\pdfsuppresswarningpagegroup=1')), []);
  // Prose: the whole value, with a break point every 8 characters, in code spans and plain text alike.
  assert.equal(latexInline(`commit \`${commit}\``), `commit \\texttt{${commit.match(/.{1,8}/g)!.join('\\allowbreak{}')}}`);
  assert.equal(latexInline(`hash ${traceHash}`), `hash ${traceHash.match(/.{1,8}/g)!.join('\\allowbreak{}')}`);
  assert.equal(latexInline('characteristically'), 'characteristically');
  const header = ['agents', 'crypto', 'trace_hash', ...Array.from({ length: 9 }, (_, i) => `steady_metric_${i}_per_s`)];
  const doc: ReportDocument = {
    title: 'T', sections: [{ title: 'S', level: 1, blocks: [
      { kind: 'paragraph', text: `Environment: kernel 6.18.44-fc-v1252, stores redis 7.0.15, mysql 10.11.19-MariaDB-0+deb12u1, commit \`${commit}\`.` },
      { kind: 'table', header, rows: [[1000, 'real', traceHash, ...Array.from({ length: 9 }, () => 73_791)], [1000, 'model', traceHash.toUpperCase(), ...Array.from({ length: 9 }, () => 1.5)]] },
    ] }],
  };
  const tex = renderLatex(doc);
  assert.deepEqual(latexProblems(tex), []);
  assert.ok(tex.includes(`& ${traceHash.slice(0, 12)} &`), 'the hash shortened to 12 characters in the table');
  assert.ok(!tex.includes(traceHash.slice(0, 13)));
  assert.match(tex, /Hashes in this table are shortened to their first 12 characters; report\.md and the JSON and CSV files it was read from hold them in full/);
  assert.ok(renderMarkdown(doc).includes(`| ${traceHash} |`), 'report.md keeps the whole hash');
  // A table without a hash has no note; a long decimal number written as text is not a hash.
  assert.doesNotMatch(renderLatex({ title: 'T', sections: [{ title: 'S', level: 1, blocks: [{ kind: 'table', header: ['id'], rows: [['123456789012345678901']] }] }] }), /shortened/);
});

test('a table too wide for the line even in the smallest type is set as parts, its name columns in each (the connections table ran past the page edge)', () => {
  const header = ['server', 'role', ...Array.from({ length: 14 }, (_, i) => `rss_without_young_generation_${i}_per_connection_kib`)];
  const rows = [['gw-bench-1', 'gateway', ...Array.from({ length: 14 }, () => 3567.964)], ['bare-ws', 'bare', ...Array.from({ length: 14 }, () => 58.24)]];
  const tex = renderLatex({ title: 'T', sections: [{ title: 'S', level: 1, blocks: [{ kind: 'table', header, rows }] }] });
  assert.deepEqual(latexProblems(tex), []);
  const tables = tex.split('\\begin{longtable}').slice(1);
  assert.ok(tables.length >= 2, `split into parts (got ${tables.length} table)`);
  for (const table of tables) assert.match(table, /^\{[^\n]*\}\n\\toprule\nserver & role & /, 'every part starts with the name columns');
  // Every value column appears once, in order, across the parts.
  const shown = tables.flatMap((table) => [...table.matchAll(/generation\\_\\allowbreak\{\}\\\\(\d+)\\_/g)].map((m) => Number(m[1])));
  assert.deepEqual(shown, Array.from({ length: 14 }, (_, i) => i));
  for (const table of tables) assert.match(table, /gw-bench-1 & gateway & 3567\.964/);
  // A table that fits stays whole.
  const narrow = renderLatex({ title: 'T', sections: [{ title: 'S', level: 1, blocks: [{ kind: 'table', header: header.slice(0, 5), rows: rows.map((r) => r.slice(0, 5)) }] }] });
  assert.equal(narrow.split('\\begin{longtable}').length - 1, 1);
});
