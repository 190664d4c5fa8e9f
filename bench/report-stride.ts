/**
 * The STRIDE tables of docs/security/threat-model.md, read from the document itself so the
 * report never drifts from it: every table whose header is `STRIDE | Threat | Mitigation | Test`,
 * with the `##` heading above it as the component.
 */
export interface StrideThreat {
  readonly component: string;
  readonly stride: string;
  readonly threat: string;
  readonly mitigation: string;
  readonly test: string;
  /** The test column says untested or gap. */
  readonly markedUntested: boolean;
  /** The test files the test column names (`*.test.ts`, `*.test.mjs`, or a path under `test/`), as written. */
  readonly testFiles: readonly string[];
  /** Covered: not marked untested or a gap, and naming at least one test file (a row naming only code is not covered). */
  readonly covered: boolean;
}

/** A test file as the threat model names one: `x.test.ts`, `dir/x.test.mjs`, `test/e2e/x.ts`. */
const testFilePattern = /(?:[\w.-]+\/)*[\w.-]+\.test\.(?:ts|mjs|js)|(?:^|(?<=[\s`(]))test\/[\w./-]+\.(?:ts|mjs|js)/g;

export function testFilesNamed(cell: string): string[] {
  return [...new Set(cell.match(testFilePattern) ?? [])];
}

/** A threat model longer than this is not ours: stop reading rather than grow without bound. */
const threatRowsMax = 2_000;

/** Cells of one Markdown table row; `\|` inside a cell is a literal bar. */
function cellsOf(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((cell) => cell.trim().replaceAll('\\|', '|'));
}

export function parseStrideTables(markdown: string): StrideThreat[] {
  const threats: StrideThreat[] = [];
  let component = '';
  let inTable = false;
  for (const line of markdown.split(/\r?\n/)) {
    if (/^#{2,3} /.test(line)) { component = line.replace(/^#+ /, '').trim(); inTable = false; continue; }
    if (!line.trimStart().startsWith('|')) { inTable = false; continue; }
    const cells = cellsOf(line);
    if (cells[0] === 'STRIDE' && cells[1] === 'Threat') { inTable = true; continue; }
    if (!inTable || cells.every((c) => /^:?-+:?$/.test(c))) continue;
    if (cells.length < 4 || threats.length >= threatRowsMax) continue;
    const test = cells[3]!;
    const markedUntested = /\*\*(untested|gap)/i.test(test);
    const testFiles = testFilesNamed(test);
    threats.push({ component, stride: cells[0]!, threat: cells[1]!, mitigation: cells[2]!, test, markedUntested, testFiles, covered: !markedUntested && testFiles.length > 0 });
  }
  return threats;
}
