import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The `--import` that lets a child process run our TypeScript sources: tsx, or the loader named by
 * SDC_TS_IMPORT (a module URL). `npm test` names its own (scripts/test-ts-register.mjs), which
 * reads JavaScript compiled once for the whole run: tsx cost each child about 0.45 s of CPU to
 * start, and the end-to-end tests fork hundreds of children.
 */
export function sourceLoaderExecArgv(): string[] {
  const named = process.env.SDC_TS_IMPORT;
  return ['--import', named !== undefined && named.length > 0 ? named : import.meta.resolve('tsx')];
}

/**
 * Under `npm test`, the compiled JavaScript of a source module: the runner compiles every source
 * at the start of the run into a mirror of the tree (SDC_TEST_JS_MIRROR, its first line, and
 * SDC_TEST_JS_SOURCES, the repository; scripts/test-ts-cache.mjs), which plain node runs with no
 * module hooks, each about 0.1-0.25 s of CPU less per child than through the loader (measured
 * 6 December, scripts/run-tests.mjs). Undefined elsewhere, or when the mirror lacks the file.
 */
function mirroredModule(sourcePath: string): string | undefined {
  const mirror = process.env.SDC_TEST_JS_MIRROR?.split('\n')[0];
  const sources = process.env.SDC_TEST_JS_SOURCES;
  if (mirror === undefined || mirror.length === 0 || sources === undefined || sources.length === 0) return undefined;
  const inSources = relative(sources, sourcePath);
  if (inSources.startsWith('..') || isAbsolute(inSources) || !inSources.endsWith('.ts')) return undefined;
  const compiled = join(mirror, `${inSources.slice(0, -'.ts'.length)}.js`);
  return existsSync(compiled) ? compiled : undefined;
}

/**
 * The node arguments that run the TypeScript source `sourcePath` as a child's main module: under
 * `npm test` its compiled JavaScript with plain node (mirroredModule: no hooks thread, no round
 * trip to it per import), elsewhere the source through the loader (sourceLoaderExecArgv). For
 * tests that spawn a source script themselves (ci-target, a control plane killed mid-write).
 */
export function sourceModuleArgv(sourcePath: string): string[] {
  const { execArgv, modulePath } = sourceModuleFork(sourcePath);
  return [...execArgv, modulePath];
}

/** sourceModuleArgv's parts, for child_process.fork: the module to run and node's flags for it. */
export function sourceModuleFork(sourcePath: string): { modulePath: string; execArgv: string[] } {
  const mirrored = mirroredModule(sourcePath);
  return mirrored !== undefined ? { modulePath: mirrored, execArgv: ['--enable-source-maps'] } : { modulePath: sourcePath, execArgv: sourceLoaderExecArgv() };
}

/**
 * Forks a sibling module of `callerUrl` (its `import.meta.url`) as a child process with an IPC
 * channel: from dist/ (the built CLI) the module is JavaScript and needs no loader; from the
 * sources a TypeScript loader runs it (sourceLoaderExecArgv), resolved here so the child runs from
 * any working directory, or under `npm test` plain node runs its compiled JavaScript (mirroredModule).
 */
export function forkSiblingModule(callerUrl: string, baseName: string): ChildProcess {
  const built = callerUrl.endsWith('.js');
  const modulePath = fileURLToPath(new URL(`./${baseName}${built ? '.js' : '.ts'}`, callerUrl));
  const mirrored = built ? undefined : mirroredModule(modulePath);
  if (mirrored !== undefined) return fork(mirrored, [], { execArgv: ['--enable-source-maps'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const execArgv = built ? [] : sourceLoaderExecArgv();
  return fork(modulePath, [], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}
