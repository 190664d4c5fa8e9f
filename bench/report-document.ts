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
 * Escaped, with a line break allowed after each `/`, `.`, `_`, `-`, `=` and `,`: TeX never
 * hyphenates typewriter text, so a long path or metric name would run into the margin.
 */
function breakableLatex(text: string): string {
  return escapeLatex(text).replace(/(\\_|[/.\-=,])(?!$)/g, '$1\\allowbreak{}');
}

/** Text with `code` spans: the spans in \texttt, breakable at path and name separators; the rest escaped. */
export function latexInline(text: string): string {
  return text.split('`').map((part, i) => (i % 2 === 1 ? `\\texttt{${breakableLatex(part)}}` : escapeLatex(part).replaceAll('\\_', '\\_\\allowbreak{}'))).join('');
}

function latexCell(cell: Cell): string {
  return typeof cell === 'number' ? formatNumber(cell) : latexInline(cell);
}

/** A header name's lines: split after each underscore when longer than 8 characters. */
function headerParts(cell: string): string[] {
  return cell.length > 8 && !cell.includes('`') ? cell.split(/(?<=_)/) : [cell];
}

/** What a cell prints, for its width. */
function latexCellText(cell: Cell | undefined): string {
  return cell === undefined ? '' : typeof cell === 'number' ? formatNumber(cell) : cell;
}

/**
 * A numeric column's header: a long name like `samples_per_s` stacked one part per line, split
 * after each underscore, so the column is as wide as its numbers, not its name.
 */
function latexNumericHeader(cell: string): string {
  const parts = headerParts(cell);
  return parts.length === 1 ? latexInline(cell) : `\\begin{tabular}[b]{@{}r@{}}${parts.map(latexInline).join('\\\\')}\\end{tabular}`;
}

function latexTable(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  // A column is numeric when every filled cell is a number (blank cells are absent values).
  const numeric = header.map((_, i) => rows.some((row) => typeof row[i] === 'number') && rows.every((row) => typeof row[i] === 'number' || row[i] === '' || row[i] === undefined));
  // Numeric columns are as wide as their longest number or header part (a character about
  // 5 pt in \footnotesize, 4.2 in \scriptsize, 3.3 in \tiny: Latin Modern's small design sizes
  // are wide; measured on pdflatex's overfull-box reports), plus 2 x \tabcolsep; text columns wrap
  // (p{}) and share what is left of the A4 line (483 pt; 13 pt kept spare), at least 6 % each. More than 12 columns
  // (the simulation table has 16) only fit the line in \tiny.
  const wide = header.length > 8;
  const widest = header.length > 12;
  const [charPt, paddingPt, linePt] = widest ? [3.3, 4, 470] : wide ? [4.2, 6, 470] : [5, 12, 470];
  const chars = (i: number) => Math.max(...headerParts(header[i]!).map((part) => part.length), ...rows.map((row) => latexCellText(row[i]).length));
  const numericPt = header.reduce((sum, _, i) => sum + (numeric[i] ? chars(i) * charPt + paddingPt : 0), 0);
  const textColumns = numeric.filter((n) => !n).length;
  const width = textColumns === 0 ? 0 : Math.max(0.06, Math.floor(((linePt - numericPt) / textColumns - paddingPt) / linePt * 100) / 100);
  // A text column is never narrower than its longest word (a trace hash, say: TeX cannot break
  // it; code spans break at / . _ - = , as above), up to a quarter of the line.
  const longestWord = (i: number) => Math.max(0, ...rows.flatMap((row) => latexCellText(row[i]).split(/[\s/_.,=`()-]+/).map((word) => word.length)));
  const textWidth = (i: number) => Math.max(width, Math.min(0.25, Math.ceil((longestWord(i) * charPt) / linePt * 100) / 100));
  const spec = numeric.map((n, i) => (n ? 'r' : `p{${textWidth(i)}\\linewidth}`)).join('');
  const line = (cells: readonly Cell[]) => `${cells.map(latexCell).join(' & ')} \\\\`;
  const headerLine = `${header.map((cell, i) => (numeric[i] ? latexNumericHeader(cell) : latexInline(cell))).join(' & ')} \\\\`;
  const size = widest ? ['\\tiny', '\\setlength{\\tabcolsep}{2pt}'] : wide ? ['\\scriptsize', '\\setlength{\\tabcolsep}{3pt}'] : ['\\footnotesize'];
  return [
    '\\begingroup', ...size, `\\begin{longtable}{${spec}}`, '\\toprule', headerLine, '\\midrule', '\\endhead',
    ...rows.map(line), '\\bottomrule', '\\end{longtable}', '\\endgroup', '',
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
