// npm run kernel:build [-- --sanitize]: builds kernel/native into kernel/native/build/<variant>/.
import { buildNativeLibrary } from './build.js';

const variant = process.argv.includes('--sanitize') ? 'sanitize' : 'release';
try {
  const result = buildNativeLibrary({ variant, force: true });
  process.stdout.write(`built ${result.libraryPath} (${result.tool})\n`);
} catch (error) {
  process.stderr.write(`kernel:build: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
