// Regenerates docs/protocol-messages.md from the message schemas and state tables.
import { writeFileSync } from 'node:fs';
import { renderMessageDocs } from '../core/protocol/messages/message-docs.js';

writeFileSync(new URL('../docs/protocol-messages.md', import.meta.url), renderMessageDocs());
