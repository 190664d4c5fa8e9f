import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import type { Command } from '../command.js';

/**
 * 16 MiB instead of the 64 KiB frame limit: this reads a local document an operator chose
 * (a policy, a manifest, a captured envelope to compare with a signature), not a frame from a
 * peer, so the frame budget does not apply; a bound still stops a mistaken pipe of a huge file
 * from exhausting memory. Depth, string, array and member limits stay at the protocol defaults,
 * so anything this prints is also something the protocol core would accept.
 */
const documentBytesMax = 16 * 1024 * 1024;

export const canonicalizeCommand: Command = {
  name: 'canonicalize',
  summary: 'Print the RFC 8785 (JCS) canonical form of a JSON document, parsed strictly',
  usage: '[FILE]',
  optionHelp: [['FILE', "JSON document to read ('-' or omitted: standard input)"]],
  allowPositionals: true,
  async run(args, io) {
    if (args.positionals.length > 1) throw new SdcError('CLI_USAGE', 'canonicalize takes at most one FILE');
    const file = args.positionals[0];
    const input = file === undefined || file === '-' ? await io.readStdin() : await readDocument(file);
    const value = parseStrictJson(input, { frameBytesMax: documentBytesMax });
    io.stdout(canonicalize(value) + '\n');
    return 0;
  },
};

/** Bytes, not text, so that invalid UTF-8 in a file is refused rather than replaced. */
async function readDocument(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new SdcError('CLI_INPUT', `cannot read ${file}: ${reason}`);
  }
}
