import { formatNumber, renderMarkdownTable, type Cell } from './report.js';

/**
 * The report as a small document model, built once and rendered twice (Markdown and LaTeX), so
 * the two never disagree on a figure. Text may hold `code` spans in backticks; each renderer
 * escapes the rest for its own syntax.
 */
export type Block =
  | { readonly kind: 'paragraph'; readonly text: string }
  | { readonly kind: 'list'; readonly items: readonly string[] }
  | { readonly kind: 'table'; readonly header: readonly string[]; readonly rows: ReadonlyArray<readonly Cell[]> }
  | { readonly kind: 'code'; readonly language: string; readonly text: string }
  /** An SVG written beside the report (`file`), with its caption. */
  | { readonly kind: 'figure'; readonly file: string; readonly caption: string };

export interface Section {
  readonly title: string;
  /** 1 for a section, 2 for a subsection. */
  readonly level: 1 | 2;
  readonly blocks: readonly Block[];
}

export interface ReportDocument {
  readonly title: string;
  readonly sections: readonly Section[];
}

function markdownBlock(block: Block): string {
  switch (block.kind) {
    case 'paragraph': return `${block.text}\n`;
    case 'list': return block.items.map((item) => `- ${item}`).join('\n') + '\n';
    case 'table': return renderMarkdownTable(block.header, block.rows);
    case 'code': return `\`\`\`${block.language}\n${block.text.replace(/\n$/, '')}\n\`\`\`\n`;
    case 'figure': return `![${block.caption.replaceAll(']', '\\]')}](${block.file})\n\n*${block.caption}*\n`;
  }
}

export function renderMarkdown(doc: ReportDocument): string {
  const parts = [`# ${doc.title}\n`];
  for (const section of doc.sections) {
    parts.push(`${'#'.repeat(section.level + 1)} ${section.title}\n`);
    for (const block of section.blocks) parts.push(markdownBlock(block));
  }
  return parts.join('\n');
}

const latexSpecials: Readonly<Record<string, string>> = {
  '\\': '\\textbackslash{}', '{': '\\{', '}': '\\}', $: '\\$', '&': '\\&', '#': '\\#', '^': '\\textasciicircum{}',
  _: '\\_', '%': '\\%', '~': '\\textasciitilde{}', '<': '\\textless{}', '>': '\\textgreater{}', '|': '\\textbar{}',
};

/** Plain text for LaTeX: every special character escaped; characters outside Latin-1 become `?` (pdflatex's default input). */
export function escapeLatex(text: string): string {
  return text.replace(/[\\{}$&#^_%~<>|]/g, (c) => latexSpecials[c]!).replace(/\*\*/g, '').replace(/[^\n\t\u0020-\u007e\u00a0-\u00ff]/g, '?');
}

/**
 * TeX breaks typewriter text nowhere and roman text only at spaces and hyphens: a run of letters
 * and digits longer than this (a 40-character commit, a 64-character trace hash) gets a break
 * point after every `runChunkChars`, so no token can run into the margin however long it is.
 */
const unbreakableCharsMax = 16;
const runChunkChars = 8;
const longRunPattern = new RegExp(`(?<![\\\\A-Za-z0-9])[A-Za-z0-9]{${unbreakableCharsMax + 1},}`, 'g');

/** Escaped LaTeX with `\allowbreak{}` inside each long run of letters and digits (`digitsOnly`: only runs holding a digit, so roman words keep their hyphenation). */
function breakLongRuns(escaped: string, digitsOnly: boolean): string {
  return escaped.replace(longRunPattern, (run) => (digitsOnly && !/[0-9]/.test(run) ? run : run.match(new RegExp(`.{1,${runChunkChars}}`, 'g'))!.join('\\allowbreak{}')));
}

/**
 * Escaped, with a line break allowed after each `/`, `.`, `_`, `-`, `=` and `,`: TeX never
 * hyphenates typewriter text, so a long path or metric name would run into the margin.
 */
function breakableLatex(text: string): string {
  return breakLongRuns(escapeLatex(text).replace(/(\\_|[/.\-=,])(?!$)/g, '$1\\allowbreak{}'), false);
}

/** Text with `code` spans: the spans in \texttt, breakable at path and name separators; the rest escaped. Long runs break in both (breakLongRuns). */
export function latexInline(text: string): string {
  return text.split('`').map((part, i) => (i % 2 === 1 ? `\\texttt{${breakableLatex(part)}}` : breakLongRuns(escapeLatex(part).replaceAll('\\_', '\\_\\allowbreak{}'), true))).join('');
}

/**
 * A hex hash in a table cell (a trace hash, a commit): shortened to `hashShownChars` in report.tex,
 * as a paper prints them, with a note under the table; report.md and the JSON and CSV it came from keep it whole.
 */
const hexHashPattern = /^[0-9a-f]{17,}$/i;
const hashShownChars = 12;

/** A hash, not a long decimal number written as text: at least one letter a-f. */
const isHexHash = (cell: Cell | undefined) => typeof cell === 'string' && hexHashPattern.test(cell) && /[a-f]/i.test(cell);

function shownCell(cell: Cell | undefined): Cell {
  if (cell === undefined) return '';
  return isHexHash(cell) ? (cell as string).slice(0, hashShownChars) : cell;
}

function latexCell(cell: Cell): string {
  const shown = shownCell(cell);
  return typeof shown === 'number' ? formatNumber(shown) : latexInline(shown);
}

/** A header name's lines: split after each underscore when longer than 8 characters. */
function headerParts(cell: string): string[] {
  return cell.length > 8 && !cell.includes('`') ? cell.split(/(?<=_)/) : [cell];
}

/** What a cell prints, for its width. */
function latexCellText(cell: Cell | undefined): string {
  const shown = shownCell(cell);
  return typeof shown === 'number' ? formatNumber(shown) : shown;
}

/** The longest piece of `text` TeX cannot break (at spaces, the separators code spans break at, and inside long runs as breakLongRuns does). */
function longestUnbreakableChars(text: string): number {
  return Math.max(0, ...text.split(/[\s/_.,=`()-]+/).flatMap((word) => word.replace(longRunPattern, (run) => run.match(new RegExp(`.{1,${runChunkChars}}`, 'g'))!.join(' ')).split(' ')).map((piece) => piece.length));
}

/**
 * A numeric column's header: a long name like `samples_per_s` stacked one part per line, split
 * after each underscore, so the column is as wide as its numbers, not its name.
 */
function latexNumericHeader(cell: string): string {
  const parts = headerParts(cell);
  return parts.length === 1 ? latexInline(cell) : `\\begin{tabular}[b]{@{}r@{}}${parts.map(latexInline).join('\\\\')}\\end{tabular}`;
}

/**
 * Type sizes a table may be set in, largest first, with a character's width in each (Latin
 * Modern's small design sizes are wide; measured on pdflatex's overfull-box reports) and the
 * column padding (2 x \tabcolsep).
 */
const tableSizes = [
  { commands: ['\\footnotesize'], charPt: 5, paddingPt: 12 },
  { commands: ['\\scriptsize', '\\setlength{\\tabcolsep}{3pt}'], charPt: 4.2, paddingPt: 6 },
  { commands: ['\\tiny', '\\setlength{\\tabcolsep}{2pt}'], charPt: 3.3, paddingPt: 4 },
] as const;
/** The A4 line (483 pt at 2 cm margins) with 13 pt kept spare for the estimate's error. */
const tableLinePt = 470;

interface TableLayout {
  readonly size: (typeof tableSizes)[number];
  /** Per column: undefined for a numeric (r) column, else its p{} width in points. */
  readonly textPt: ReadonlyArray<number | undefined>;
  /** The estimated width of the whole table, padding included. */
  readonly totalPt: number;
}

/**
 * Text columns share what the numeric columns leave of the line; a column whose longest
 * unbreakable piece is wider than its share gets that width and the others share the rest.
 */
function shareTextWidths(minPt: ReadonlyArray<number | undefined>, availablePt: number): Array<number | undefined> {
  const widths: Array<number | undefined> = minPt.map(() => undefined);
  let open = minPt.flatMap((m, i) => (m === undefined ? [] : [i])).sort((a, b) => minPt[b]! - minPt[a]! || a - b);
  let remainingPt = availablePt;
  while (open.length > 0 && minPt[open[0]!]! > remainingPt / open.length) {
    widths[open[0]!] = minPt[open[0]!]!;
    remainingPt -= minPt[open[0]!]!;
    open = open.slice(1);
  }
  for (const i of open) widths[i] = Math.max(minPt[i]!, remainingPt / open.length);
  return widths;
}

/**
 * The largest size, from the one the column count suggests (over 8 columns \scriptsize, over 12
 * \tiny), at which the numeric columns and every text column's longest unbreakable piece fit the
 * line; the smallest when none does (then the table is as narrow as it can be).
 */
function tableLayout(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>, numeric: readonly boolean[]): TableLayout {
  const first = header.length > 12 ? 2 : header.length > 8 ? 1 : 0;
  let layout: TableLayout | undefined;
  for (const size of tableSizes.slice(first)) {
    const numericChars = (i: number) => Math.max(...headerParts(header[i]!).map((part) => part.length), ...rows.map((row) => latexCellText(row[i]).length));
    const textChars = (i: number) => Math.max(1, longestUnbreakableChars(header[i]!), ...rows.map((row) => longestUnbreakableChars(latexCellText(row[i]))));
    const numericPt = header.reduce((sum, _, i) => sum + (numeric[i] ? numericChars(i) * size.charPt + size.paddingPt : 0), 0);
    const textColumns = numeric.filter((n) => !n).length;
    const minPt = header.map((_, i) => (numeric[i] ? undefined : textChars(i) * size.charPt));
    const textPt = shareTextWidths(minPt, tableLinePt - numericPt - textColumns * size.paddingPt);
    const totalPt = numericPt + textPt.reduce<number>((sum, w) => sum + (w === undefined ? 0 : w + size.paddingPt), 0);
    layout = { size, textPt, totalPt };
    if (totalPt <= tableLinePt) break;
  }
  return layout!;
}

/** A column is numeric when every filled cell is a number (blank cells are absent values). */
function numericColumns(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): boolean[] {
  return header.map((_, i) => rows.some((row) => typeof row[i] === 'number') && rows.every((row) => typeof row[i] === 'number' || row[i] === '' || row[i] === undefined));
}

/**
 * A table too wide for the line even in the smallest size (the connections bench's 16 columns ran
 * 57 pt past it, into the page edge) is set as several tables: its leading text columns (the
 * row's name) repeated in each, the other columns shared out in order until each part fits.
 */
function latexTable(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  const numeric = numericColumns(header, rows);
  // Numeric columns are as wide as their longest number or header part; text columns wrap (p{}).
  const layout = tableLayout(header, rows, numeric);
  const firstNumeric = numeric.indexOf(true);
  const keyColumns = Math.max(1, firstNumeric === -1 ? header.length : firstNumeric);
  const rest = header.length - keyColumns;
  if (layout.totalPt <= tableLinePt || rest < 2) return latexTableWhole(header, rows, layout);
  const half = keyColumns + Math.ceil(rest / 2);
  const part = (from: number, to: number) => {
    const columns = [...Array.from({ length: keyColumns }, (_, i) => i), ...Array.from({ length: to - from }, (_, i) => from + i)];
    return latexTable(columns.map((i) => header[i]!), rows.map((row) => columns.map((i) => row[i] ?? '')));
  };
  const continued = '{\\footnotesize The same rows, their other columns:\\par}';
  return [part(keyColumns, half), continued, '', part(half, header.length)].join('\n');
}

function latexTableWhole(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>, layout: TableLayout): string {
  const numeric = numericColumns(header, rows);
  const { size, textPt } = layout;
  // Widths in thousandths of the line, rounded up: a column never narrower than its longest piece.
  // Ragged right: justified narrow columns stretch their spaces (hundreds of underfull lines).
  const spec = textPt.map((w) => (w === undefined ? 'r' : `>{\\raggedright\\arraybackslash}p{${(Math.ceil((w / tableLinePt) * 1000) / 1000).toFixed(3)}\\linewidth}`)).join('');
  const line = (cells: readonly Cell[]) => `${cells.map(latexCell).join(' & ')} \\\\`;
  const headerLine = `${header.map((cell, i) => (numeric[i] ? latexNumericHeader(cell) : latexInline(cell))).join(' & ')} \\\\`;
  const shortened = rows.some((row) => row.some(isHexHash));
  const note = shortened ? [`{\\footnotesize Hashes in this table are shortened to their first ${hashShownChars} characters; report.md and the JSON and CSV files it was read from hold them in full.\\par}`, ''] : [];
  return [
    '\\begingroup', ...size.commands, `\\begin{longtable}{${spec}}`, '\\toprule', headerLine, '\\midrule', '\\endhead',
    ...rows.map(line), '\\bottomrule', '\\end{longtable}', '\\endgroup', '', ...note,
  ].join('\n');
}

function latexBlock(block: Block): string {
  switch (block.kind) {
    case 'paragraph': return `${latexInline(block.text)}\n`;
    case 'list': return ['\\begin{itemize}', ...block.items.map((item) => `\\item ${latexInline(item)}`), '\\end{itemize}', ''].join('\n');
    case 'table': return latexTable(block.header, block.rows);
    // verbatim ends only at \end{verbatim}: a source line holding that text would end it early.
    // Small type: Mermaid lines are long, and verbatim never wraps.
    case 'code': return `\\begingroup\n\\footnotesize\n\\begin{verbatim}\n${block.text.replace(/\n$/, '').replaceAll('\\end{verbatim}', '\\end {verbatim}')}\n\\end{verbatim}\n\\endgroup\n`;
    case 'figure': {
      // pdflatex cannot read SVG: a PDF beside it (from a converter, when one exists) is used, else the SVG's name is printed.
      // [H] (float.sty): here, below its text. Floating figures beside a longtable overfilled pages (by up to 300 pt).
      const pdf = block.file.replace(/\.svg$/, '.pdf');
      return [
        '\\begin{figure}[H]', '\\centering',
        `\\IfFileExists{${pdf}}{\\includegraphics[width=0.9\\linewidth]{${pdf}}}{\\fbox{\\texttt{${escapeLatex(block.file)}} (SVG; no PDF converter was available)}}`,
        `\\caption{${latexInline(block.caption)}}`, '\\end{figure}', '',
      ].join('\n');
    }
  }
}

export function renderLatex(doc: ReportDocument): string {
  const parts = [
    // lmodern: scalable T1 fonts (without it pdflatex makes bitmap fonts); the page-group warning is pdfTeX's, one per included PDF figure.
    '\\documentclass[a4paper,10pt]{article}', '\\usepackage[T1]{fontenc}', '\\usepackage{lmodern}', '\\usepackage[margin=2cm]{geometry}',
    '\\ifdefined\\pdfsuppresswarningpagegroup\\pdfsuppresswarningpagegroup=1\\fi',
    '\\usepackage{booktabs}', '\\usepackage{longtable}', '\\usepackage{graphicx}', '\\usepackage{array}', '\\usepackage{float}',
    // emergencystretch: a line of typewriter text (a command, a path) may stretch the spaces around it instead of running into the margin.
    '\\setlength{\\emergencystretch}{3em}',
    `\\title{${latexInline(doc.title)}}`, '\\date{}', '\\begin{document}', '\\maketitle', '',
  ];
  for (const section of doc.sections) {
    parts.push(`\\${section.level === 1 ? 'section' : 'subsection'}{${latexInline(section.title)}}`, '');
    for (const block of section.blocks) parts.push(latexBlock(block));
  }
  parts.push('\\end{document}', '');
  return parts.join('\n');
}
