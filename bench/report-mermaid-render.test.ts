import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { buildReport, reportMermaidSources } from './report-build.js';
import { latexProblems, markdownProblems, xmlProblems } from './report-check.js';
import { documentedDiagrams, reportDiagrams } from './report-diagrams.js';
import type { ReportInputs } from './report-inputs.js';
import { defaultChromiumPath, normalizeSvg, renderMermaidSvgs } from './report-mermaid-render.js';

const noInputs: ReportInputs = { benches: [], sims: [], matrices: [], scrapes: [], runSets: [], skipped: [] };

async function diagramsFromDocs() {
  const docs: Record<string, string> = {};
  for (const { doc } of documentedDiagrams) docs[doc] = await readFile(new URL(`../${doc}`, import.meta.url), 'utf8');
  return reportDiagrams(docs);
}

test('normalizeSvg gives mermaid\'s page-sized SVG a size in pixels from its viewBox', () => {
  const svg = '<svg id="d" width="100%" xmlns="http://www.w3.org/2000/svg" style="max-width: 120.5px;" viewBox="0 0 120.5 40.2"><g/></svg>';
  assert.equal(normalizeSvg(svg), '<svg width="121" height="41" id="d" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120.5 40.2"><g/></svg>\n');
});

test('without a browser the diagrams stay Mermaid sources and the report says why', async () => {
  const diagrams = await diagramsFromDocs();
  const rendering = await renderMermaidSvgs(reportMermaidSources(diagrams), { chromiumPath: '/nonexistent/chromium' });
  assert.equal(rendering.svgs, null);
  assert.match(rendering.svgs === null ? rendering.reason : '', /no browser at \/nonexistent\/chromium/);
  const files = buildReport({ inputs: noInputs, threats: [], command: 'sdc report --from x', diagrams, rendering });
  assert.deepEqual(Object.keys(files).filter((n) => n.endsWith('.svg')), []);
  assert.match(files['report.md']!, /Not drawn here: no browser at \/nonexistent\/chromium, Debian's chromium package\. The Mermaid sources stand alone/);
  assert.match(files['report.md']!, /```mermaid\nsequenceDiagram/);
});

// One browser for every diagram: about 3 s of CPU and 10-20 s of wall time on a loaded 2-core machine.
test('the architecture, the sequences and the state machines drawn as SVG in chromium, embedded in the report', {
  skip: existsSync(defaultChromiumPath) ? false : `${defaultChromiumPath} is absent (apt-get install chromium): the fallback test above covers the report without it`,
}, async () => {
  const diagrams = await diagramsFromDocs();
  const sources = reportMermaidSources(diagrams);
  assert.deepEqual(sources.map((s) => s.name), ['diagram-architecture', 'diagram-enrollment', 'diagram-command-round-trip', 'diagram-ota-rollout', 'state-session', 'state-command', 'state-ota-execution']);
  // The session machine twice more, after the others: rough.js draws its note with random curves, which must be seeded.
  const rendering = await renderMermaidSvgs([...sources, { name: 'again', mermaid: sources[4]!.mermaid }]);
  if (rendering.svgs === null) return assert.fail(rendering.reason);
  const { svgs, renderer } = rendering;
  assert.equal(svgs['again'], svgs['state-session'], 'the same source drawn twice gives the same bytes');
  assert.match(renderer, /^mermaid \d+\.\d+\.\d+ in Chromium \d+/);
  for (const { name } of sources) {
    const svg = svgs[name]!;
    assert.deepEqual(xmlProblems(svg), [], name);
    assert.match(svg, /^<svg width="\d+" height="\d+" /, name);
    // Labels as SVG text, not HTML in foreignObject (which rsvg-convert would not draw).
    assert.doesNotMatch(svg, /foreignObject/, name);
  }
  // What the diagrams say is in the drawing: a participant, a message, every state of the session machine.
  assert.match(svgs['diagram-command-round-trip']!, /COMMAND_DELIVERY/);
  for (const state of ['connecting', 'authenticating', 'ready', 'closed', 'error']) assert.match(svgs['state-session']!, new RegExp(`>${state}<`), state);
  const files = buildReport({ inputs: noInputs, threats: [], command: 'sdc report --from x', diagrams, rendering });
  for (const { name } of sources) assert.equal(files[`${name}.svg`], svgs[name], name);
  const md = files['report.md']!;
  assert.match(md, /Drawn by mermaid \d+\.\d+\.\d+ in Chromium/);
  assert.match(md, /!\[Sequence: command round trip\]\(diagram-command-round-trip\.svg\)/);
  assert.match(md, /!\[The command machine, from its transition table\]\(state-command\.svg\)/);
  // The sources stay beside the drawings.
  assert.ok(md.includes('```mermaid\n' + diagrams[0]!.mermaid));
  assert.match(files['report.tex']!, /\\IfFileExists\{state-session\.pdf\}/);
  assert.deepEqual(markdownProblems(md), []);
  assert.deepEqual(latexProblems(files['report.tex']!), []);
});
