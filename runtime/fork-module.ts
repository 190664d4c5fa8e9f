import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Forks a sibling module of `callerUrl` (its `import.meta.url`) as a child process with an IPC
 * channel: from dist/ (the built CLI) the module is JavaScript and needs no loader; from the
 * sources tsx compiles it, resolved here so the child runs from any working directory.
 */
export function forkSiblingModule(callerUrl: string, baseName: string): ChildProcess {
  const built = callerUrl.endsWith('.js');
  const modulePath = fileURLToPath(new URL(`./${baseName}${built ? '.js' : '.ts'}`, callerUrl));
  const execArgv = built ? [] : ['--import', import.meta.resolve('tsx')];
  return fork(modulePath, [], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}
