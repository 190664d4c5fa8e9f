// npm run build:viewer (and scripts/build.mjs, so `npm ci` / `prepare` builds it with the rest):
// bundles the operator console (viewer/, TypeScript + lit + uPlot) with esbuild into static
// files that the control plane serves at `/` (server/control-plane/http/viewer-static.ts):
//   index.html   the page: one script and one stylesheet, both same-origin, no inline code
//   app.js       the whole console as one ES module
//   app.css      the console's stylesheet with uPlot's
//
// Plain JavaScript, like build.mjs: it runs before anything is built and without tsx.
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Where the bundle goes by default: beside the compiled server, which finds it there. */
export const viewerDistDir = join(root, 'dist', 'viewer');

/** The files the control plane serves, and nothing else; the plugin lists the same names. */
export const viewerFiles = Object.freeze(['index.html', 'app.js', 'app.css']);

/** esbuild, or undefined in a production install (it is a dev dependency). */
function loadEsbuild() {
  try {
    return createRequire(join(root, 'package.json'))('esbuild');
  } catch {
    return undefined;
  }
}

/**
 * Builds into a scratch folder beside `outDir`, then swaps it in, so a server reading `outDir`
 * never sees half a bundle. Returns the bundle's sizes in bytes, or undefined without esbuild.
 */
export function buildViewer({ outDir = viewerDistDir, minify = true } = {}) {
  const esbuild = loadEsbuild();
  if (esbuild === undefined) return undefined;
  const target = resolve(outDir);
  const scratch = `${target}.build-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  try {
    esbuild.buildSync({
      entryPoints: { app: join(root, 'viewer', 'main.ts') },
      bundle: true,
      format: 'esm',
      // Chromium, Firefox and Safari of 2022 on: class fields, top-level await, optional chaining.
      target: ['es2022'],
      platform: 'browser',
      minify,
      // Licences of lit and uPlot stay with the code they cover.
      legalComments: 'eof',
      outdir: scratch,
      logLevel: 'warning',
    });
    copyFileSync(join(root, 'viewer', 'index.html'), join(scratch, 'index.html'));
    for (const name of viewerFiles) {
      if (!existsSync(join(scratch, name))) throw new Error(`viewer build produced no ${name}`);
    }
    mkdirSync(dirname(target), { recursive: true });
    rmSync(target, { recursive: true, force: true });
    renameSync(scratch, target);
    return Object.fromEntries(viewerFiles.map((name) => [name, statSync(join(target, name)).size]));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const outArg = process.argv.indexOf('--out-dir');
  const outDir = outArg > 0 && process.argv[outArg + 1] ? process.argv[outArg + 1] : viewerDistDir;
  try {
    const startedAtMs = Date.now();
    const sizes = buildViewer({ outDir });
    if (sizes === undefined) {
      process.stderr.write('build:viewer: esbuild is not installed (production install?); nothing built\n');
    } else {
      const list = Object.entries(sizes).map(([name, bytes]) => `${name} ${(bytes / 1024).toFixed(1)} KiB`).join(', ');
      process.stdout.write(`build:viewer: ${relative(process.cwd(), outDir) || '.'}: ${list}, in ${((Date.now() - startedAtMs) / 1000).toFixed(1)} s\n`);
    }
  } catch (error) {
    process.stderr.write(`build:viewer: ${error.message}\n`);
    process.exitCode = 1;
  }
}
