import { fork, type ChildProcess } from 'node:child_process';
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
 * Forks a sibling module of `callerUrl` (its `import.meta.url`) as a child process with an IPC
 * channel: from dist/ (the built CLI) the module is JavaScript and needs no loader; from the
 * sources a TypeScript loader runs it (sourceLoaderExecArgv), resolved here so the child runs from
 * any working directory.
 */
export function forkSiblingModule(callerUrl: string, baseName: string): ChildProcess {
  const built = callerUrl.endsWith('.js');
  const modulePath = fileURLToPath(new URL(`./${baseName}${built ? '.js' : '.ts'}`, callerUrl));
  const execArgv = built ? [] : sourceLoaderExecArgv();
  return fork(modulePath, [], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}
