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

/** Text with `code` spans: the spans in \texttt, the rest escaped. */
export function latexInline(text: string): string {
  return text.split('`').map((part, i) => (i % 2 === 1 ? `\\texttt{${escapeLatex(part)}}` : escapeLatex(part))).join('');
}

function latexCell(cell: Cell): string {
  return typeof cell === 'number' ? formatNumber(cell) : latexInline(cell);
}

function latexTable(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  // A column is numeric when every filled cell is a number (blank cells are absent values).
  const numeric = header.map((_, i) => rows.some((row) => typeof row[i] === 'number') && rows.every((row) => typeof row[i] === 'number' || row[i] === '' || row[i] === undefined));
  // Text columns wrap (p{}) and share what the numeric columns (about 6 % of the line each) leave.
  const textColumns = numeric.filter((n) => !n).length;
  const share = Math.max(0.3, 0.95 - 0.06 * (header.length - textColumns));
  const width = textColumns === 0 ? 0 : Math.max(0.06, Math.floor((share / textColumns) * 100) / 100);
  const spec = numeric.map((n) => (n ? 'r' : `p{${width}\\linewidth}`)).join('');
  const line = (cells: readonly Cell[]) => `${cells.map(latexCell).join(' & ')} \\\\`;
  const size = header.length > 8 ? ['\\scriptsize', '\\setlength{\\tabcolsep}{3pt}'] : ['\\footnotesize'];
  return [
    '\\begingroup', ...size, `\\begin{longtable}{${spec}}`, '\\toprule', line(header), '\\midrule', '\\endhead',
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
      const pdf = block.file.replace(/\.svg$/, '.pdf');
      return [
        '\\begin{figure}[htbp]', '\\centering',
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
    '\\usepackage{booktabs}', '\\usepackage{longtable}', '\\usepackage{graphicx}', '\\usepackage{array}',
    `\\title{${latexInline(doc.title)}}`, '\\date{}', '\\begin{document}', '\\maketitle', '',
  ];
  for (const section of doc.sections) {
    parts.push(`\\${section.level === 1 ? 'section' : 'subsection'}{${latexInline(section.title)}}`, '');
    for (const block of section.blocks) parts.push(latexBlock(block));
  }
  parts.push('\\end{document}', '');
  return parts.join('\n');
}
