import { readFile } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';
import type { CliIo } from './command.js';

/** A password file holds one line; anything larger than this is not a password file. */
const passwordFileBytesMax = 64 * 1024;
/** Characters typed at a prompt before it stops listening: the longest password the API takes. */
const promptCharsMax = 1024;

/** The first line of a file (`--password-file`): never argv, where other users can read it. */
export async function readPasswordFile(path: string, option: string): Promise<string> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > passwordFileBytesMax) throw new SdcError('CLI_INPUT', `${option} ${path} is larger than ${passwordFileBytesMax} bytes`, { path });
    text = bytes.toString('utf8');
  } catch (error) {
    if (SdcError.is(error)) throw error;
    throw new SdcError('CLI_INPUT', `cannot read ${option} ${path}`, { path });
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new SdcError('CLI_INPUT', `${option} ${path} has an empty first line`, { path });
  return line;
}

/**
 * Lines of stdin handed out in order (`--password-stdin` with two passwords: the current one,
 * then the new one). Stdin is read once, at the first line asked for.
 */
export class StdinLines {
  readonly #io: CliIo;
  #lines: string[] | undefined;

  constructor(io: CliIo) {
    this.#io = io;
  }

  async next(what: string): Promise<string> {
    this.#lines ??= (await this.#io.readStdin()).split(/\r?\n/);
    const line = this.#lines.shift() ?? '';
    if (line.length === 0) throw new SdcError('CLI_INPUT', `no ${what} on stdin`);
    return line;
  }
}

/**
 * Asks for a secret on the terminal without echoing it: stdin in raw mode, the question on
 * stderr. Enter ends it, Backspace removes a character, Ctrl-C or Ctrl-D gives up (CLI_INPUT).
 */
export function ttyPromptSecret(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (error?: SdcError) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish();
        if (char === '\u0003' || char === '\u0004') return finish(new SdcError('CLI_INPUT', 'no password given'));
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else if (typed.length < promptCharsMax) typed += char;
      }
    };
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
