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
