import { errorDomains } from './registry.js';

/** Renders docs/errors.md from the registry, so the docs cannot drift from the code. */
export function renderErrorDocs(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from core/errors by `npm run docs:errors`; a test fails when this file is stale. -->',
    '',
    'Every refusal in Secure Device Control is an `SdcError` with a stable string `code`.',
    'A code is never reused for a new meaning; withdrawn codes are listed in `core/errors/codes/retired.ts`.',
    '`fault` says who is at fault: `remote` means the peer sent something we refuse, `local` means our side failed.',
    '`status` is the HTTP status used by the API (and the hint the gateway uses for ERROR frames).',
    '',
  ];
  for (const { name, table } of errorDomains) {
    lines.push(`## ${name}`, '', '| code | fault | status | meaning |', '| --- | --- | --- | --- |');
    for (const [code, spec] of Object.entries(table)) {
      lines.push(`| \`${code}\` | ${spec.fault} | ${spec.status} | ${spec.summary} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
