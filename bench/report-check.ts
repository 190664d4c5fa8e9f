/**
 * Structural checks for what `sdc report` writes, run on its own output before anything is
 * written (a malformed report is a bug, not a file to discover later) and by its tests. No XML
 * parser or TeX is installed here, so these are small checkers of the subset the writers emit.
 * Each returns the problems found; an empty list is a pass.
 */

const entityPattern = /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;

/** XML well-formedness: one root, tags nest and close in order, quoted unique attributes, only known entities. */
export function xmlProblems(text: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let index = 0;
  while (index < text.length && problems.length === 0) {
    const open = text.indexOf('<', index);
    const chunk = open < 0 ? text.slice(index) : text.slice(index, open);
    if (entityPattern.test(chunk)) problems.push(`bad entity in text near ${JSON.stringify(chunk.slice(0, 40))}`);
    if (stack.length === 0 && chunk.trim() !== '') problems.push('text outside the root element');
    if (open < 0) break;
    const close = text.indexOf('>', open);
    if (close < 0) { problems.push('unterminated tag'); break; }
    const tag = text.slice(open + 1, close);
    index = close + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) problems.push(`mismatched closing tag </${name}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const match = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*$/.exec(selfClosing ? tag.slice(0, -1) : tag);
    if (match === null) { problems.push(`malformed tag <${tag.slice(0, 40)}>`); break; }
    const names = [...match[2]!.matchAll(/([A-Za-z_][\w:.-]*)="([^"]*)"/g)];
    if (new Set(names.map((n) => n[1])).size !== names.length) problems.push(`duplicate attribute in <${match[1]}>`);
    if (names.some((n) => entityPattern.test(n[2]!))) problems.push(`bad entity in an attribute of <${match[1]}>`);
    if (stack.length === 0) roots += 1;
    if (!selfClosing) stack.push(match[1]!);
  }
  if (stack.length > 0) problems.push(`unclosed elements: ${stack.join(', ')}`);
  if (roots !== 1) problems.push(`${roots} root elements, not 1`);
  return problems;
}

/**
 * A hash or commit as one run of more than 16 letters and digits (with a digit among them, so
 * not a long word, which roman type hyphenates): nowhere for TeX to break it, as in a 64-character
 * trace hash that ran 125 pt into the margin. Command names are not runs (after a backslash).
 */
const unbreakableTokenPattern = /(?<![\\A-Za-z0-9])(?=[A-Za-z]*[0-9])[A-Za-z0-9]{17,}/;

/**
 * LaTeX structure: a preamble and one document environment, environments opened and closed in
 * order, braces balanced outside verbatim, every table row of a booktabs table ended by `\\`,
 * no unescaped special character (`#`, `$`, `%`, `&` outside a tabular, `_`, `^`) in text, and
 * no token too long to break (unbreakableTokenPattern).
 */
export function latexProblems(text: string): string[] {
  const problems: string[] = [];
  if (!text.startsWith('\\documentclass')) problems.push('does not start with \\documentclass');
  const environments: string[] = [];
  let depth = 0;
  let verbatim = false;
  text.split('\n').forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (verbatim) { if (line === '\\end{verbatim}') { verbatim = false; environments.pop(); } return; }
    for (const [, kind, name] of line.matchAll(/\\(begin|end)\{([a-z*]+)\}/g)) {
      if (kind === 'begin') environments.push(name!);
      else if (environments.pop() !== name) problems.push(`${at}: \\end{${name}} closes another environment`);
    }
    if (line === '\\begin{verbatim}') { verbatim = true; return; }
    const code = line.replace(/\\[\\{}$&#^_%~]/g, '');
    for (const c of code) {
      if (c === '{') depth += 1;
      else if (c === '}') depth -= 1;
      if (depth < 0) { problems.push(`${at}: unbalanced }`); depth = 0; }
    }
    const inTable = environments.includes('longtable');
    if (/[#$%^]|(?<!\\)_/.test(code.replace(/\\[a-z]+/gi, ''))) problems.push(`${at}: unescaped special character`);
    if (!inTable && code.includes('&')) problems.push(`${at}: & outside a table`);
    const token = unbreakableTokenPattern.exec(line)?.[0];
    if (token !== undefined) problems.push(`${at}: ${token.length} letters and digits TeX cannot break (${token.slice(0, 20)}...): they run into the margin`);
    if (inTable && code.includes('&') && !line.endsWith('\\\\')) problems.push(`${at}: table row without \\\\`);
  });
  if (depth !== 0) problems.push(`${depth} unclosed braces`);
  if (environments.length > 0) problems.push(`unclosed environments: ${environments.join(', ')}`);
  if (!/\\end\{document\}\n*$/.test(text)) problems.push('does not end with \\end{document}');
  return problems;
}

/** Markdown: fenced blocks closed, every table's rows as wide as its header and a delimiter row after it. */
export function markdownProblems(text: string): string[] {
  const problems: string[] = [];
  const lines = text.split('\n');
  let fence = false;
  let columns = 0;
  lines.forEach((line, i) => {
    if (line.startsWith('```')) { fence = !fence; return; }
    if (fence) return;
    if (!line.startsWith('|')) { columns = 0; return; }
    const width = line.replace(/\\\|/g, '').split('|').length - 2;
    if (columns === 0) {
      columns = width;
      if (!/^\|(\s*:?-{3,}:?\s*\|)+$/.test(lines[i + 1] ?? '')) problems.push(`line ${i + 1}: a table header without its delimiter row`);
    } else if (width !== columns) problems.push(`line ${i + 1}: ${width} cells in a ${columns}-column table`);
  });
  if (fence) problems.push('an unclosed code fence');
  return problems;
}
