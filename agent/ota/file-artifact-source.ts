import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import type { ArtifactSource } from '../../kernel/mock/mock-kernel.js';

/**
 * The mock kernel's artifact source on a real agent: the bytes of a file under `rootDir`, read
 * whole and bounded by `artifactBytesMax`; a path outside it, a larger file or any read error
 * reads as absent (the kernel then answers its own refusal, as a driver that cannot open the path).
 */
export function filesUnder(rootDir: string, artifactBytesMax: number): ArtifactSource {
  const root = resolve(rootDir) + sep;
  return {
    read(path) {
      if (!resolve(path).startsWith(root)) return undefined;
      let fd: number | undefined;
      try {
        fd = openSync(path, 'r');
        const size = fstatSync(fd).size;
        if (size > artifactBytesMax) return undefined;
        const bytes = new Uint8Array(size);
        readSync(fd, bytes, 0, size, 0);
        return bytes;
      } catch {
        return undefined;
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    },
  };
}
