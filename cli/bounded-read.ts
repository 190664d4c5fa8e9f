import { open, type FileHandle } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';

/**
 * Reads of small inputs (a pairing token, a password) that stop after `bytesMax + 1` bytes, so an
 * input that is far too long is refused after that much rather than read whole: a huge file, a
 * device such as /dev/zero, or a pipe whose writer never closes it would otherwise fill memory or
 * wait for ever (review h11, finding 9). The extra byte is how the caller tells "exactly bytesMax"
 * from "more".
 */

/** The stream's bytes as UTF-8, at most `bytesMax + 1` of them (all of them without a bound); stops pulling once over. */
export async function readStreamBounded(stream: AsyncIterable<Buffer | string>, bytesMax?: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    chunks.push(bytes);
    length += bytes.length;
    // Leaving the loop ends the iteration (a Readable is destroyed): nothing more is read.
    if (bytesMax !== undefined && length > bytesMax) break;
  }
  const all = Buffer.concat(chunks);
  return (bytesMax === undefined ? all : all.subarray(0, bytesMax + 1)).toString('utf8');
}

/**
 * A file (or a pipe such as `<(echo token)`) of at most `bytesMax` bytes, as UTF-8: CLI_INPUT when
 * it cannot be opened or read, or holds more (found after reading `bytesMax + 1` bytes, never all).
 */
export async function readFileBounded(path: string, bytesMax: number, what: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { path });
  }
  try {
    const buffer = Buffer.alloc(bytesMax + 1);
    let length = 0;
    while (length < buffer.length) {
      // position null: read on from the current offset, which a pipe needs.
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > bytesMax) throw new SdcError('CLI_INPUT', `${what} ${path} is over ${bytesMax} bytes`, { path });
    return buffer.subarray(0, length).toString('utf8');
  } catch (error) {
    if (SdcError.is(error)) throw error;
    throw new SdcError('CLI_INPUT', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { path });
  } finally {
    await handle.close();
  }
}
