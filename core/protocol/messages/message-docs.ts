import { messageCatalog, messageTypes } from './catalog.js';
import { exampleBodies } from './examples.js';
import { opcodeArgs, opcodes } from './opcodes.js';
import { renderMermaid } from '../state-machine.js';
import { sessionTable } from '../session-machine.js';
import { commandTable } from '../command-machine.js';

/**
 * Renders docs/protocol-messages.md from the schemas, so the reference cannot drift from the
 * validators. The prose and flows live in docs/protocol.md; this is the field reference.
 */
export function renderMessageDocs(): string {
  const out = [
    '# Protocol message reference',
    '',
    '<!-- Generated from core/protocol/messages by `npm run docs:protocol`; a test fails when this file is stale. -->',
    '',
    'Every frame is a signed envelope (see [protocol.md](protocol.md)); below are the `body` schemas, as JSON Schema,',
    'each with an example. Unknown members are refused everywhere (`additionalProperties: false`).',
    '',
  ];
  for (const type of messageTypes) {
    const spec = messageCatalog[type];
    out.push(`## ${type}`, '', `Direction: ${spec.direction}. ${spec.summary}`, '', '```json', JSON.stringify(spec.body, null, 2), '```', '',
      'Example body:', '', '```json', JSON.stringify(exampleBodies[type], null, 2), '```', '');
  }
  out.push('## Command opcodes', '', '| opcode | args schema |', '| --- | --- |');
  for (const opcode of opcodes) out.push(`| \`${opcode}\` | \`${JSON.stringify(opcodeArgs[opcode])}\` |`);
  out.push('', '## State machines', '', 'Drawn from the transition tables in core/protocol; an event with no arrow is refused with `PROTO_ILLEGAL_TRANSITION`.', '');
  out.push('### Session', '', '```mermaid', renderMermaid(sessionTable), '```', '');
  out.push('### Command', '', '```mermaid', renderMermaid(commandTable), '```', '');
  return out.join('\n');
}
