// The kernel's state files survive power loss (review h1, F5): after the rename of command-seq,
// command-keys, watchdog and the slot links, the directory is fsynced, so the rename itself is on
// disk. Power loss cannot be staged here; what is tested instead: the exported helper's results
// (errors reported, EINVAL tolerated), and, in a child node with an fsync shim preloaded (the way
// strace would show it), that a signed command's replay window is followed by a directory fsync
// and that a failing one refuses the command (IO_ERROR) rather than running it undurably.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { sourceModuleArgv } from '../../runtime/fork-module.js';
import { releaseLibraryForTests } from './test-support.js';

const library = releaseLibraryForTests();
const libraryPath = library.libraryPath;
let skip = library.skip;

// Interposes fsync for directory descriptors only; the library's calls go through the PLT, so the preload sees them.
const shimSource = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int fsync(int fd) {
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  const char* mode = getenv("SDC_TEST_DIR_FSYNC");
  struct stat st;
  if (mode != NULL && mode[0] != '\\0' && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (strcmp(mode, "fail") == 0) { errno = EIO; return -1; }
    if (strcmp(mode, "einval") == 0) { errno = EINVAL; return -1; }
    if (write(2, "sdc-dir-fsync\\n", 14) < 0) return -1;
  }
  return real(fd);
}
`;

let shimDir = '';
let shimPath = '';
if (skip === undefined) {
  shimDir = mkdtempSync(join(tmpdir(), 'sdc-fsync-shim-'));
  writeFileSync(join(shimDir, 'shim.c'), shimSource);
  shimPath = join(shimDir, 'shim.so');
  const built = spawnSync('gcc', ['-shared', '-fPIC', '-O1', '-o', shimPath, join(shimDir, 'shim.c'), '-ldl'], { encoding: 'utf8' });
  if (built.status !== 0) skip = `cannot build the fsync shim: ${built.stderr ?? built.error?.message}`;
}
test.after(() => { if (shimDir) rmSync(shimDir, { recursive: true, force: true }); });

function runChild(mode: string): { outcome: string; stderr: string } {
  const child = fileURLToPath(new URL('./durable-state-child.ts', import.meta.url));
  const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: shimPath };
  delete env.NODE_TEST_CONTEXT;
  delete env.SDC_TEST_DIR_FSYNC;
  const result = spawnSync(process.execPath, [...sourceModuleArgv(child), libraryPath, mode], { encoding: 'utf8', timeout: 120_000, env });
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
  const line = result.stdout.trim().split('\n').at(-1) ?? '';
  return { outcome: (JSON.parse(line) as { outcome: string }).outcome, stderr: result.stderr };
}

test('sdc_sync_directory: 0 for a directory, the errno for an error, EINVAL (a filesystem that cannot sync a directory) tolerated', { skip }, () => {
  const syncDirectory = koffi.load(libraryPath).func('int sdc_sync_directory(const char *dir)') as (dir: string) => number;
  const dir = mkdtempSync(join(tmpdir(), 'sdc-sync-dir-'));
  try {
    writeFileSync(join(dir, 'file'), 'x');
    assert.equal(syncDirectory(dir), 0);
    assert.equal(syncDirectory(join(dir, 'missing')), constants.errno.ENOENT);
    assert.equal(syncDirectory(join(dir, 'file')), constants.errno.ENOTDIR);
    // procfs has no fsync for directories: the call fails EINVAL, which is not an error here.
    assert.equal(syncDirectory('/proc'), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a signed command persists its replay window and then fsyncs the sandbox directory before it runs', { skip }, () => {
  const { outcome, stderr } = runChild('count');
  assert.equal(outcome, 'NOT_SUPPORTED'); // the lock itself is off in tests: the command got past its check
  const during = stderr.slice(stderr.indexOf('sdc-command-start'));
  assert.ok(stderr.includes('sdc-command-start'), stderr);
  assert.ok(during.includes('sdc-dir-fsync'), `no directory fsync while the command was checked:\n${stderr.slice(-2000)}`);
});

test('a directory fsync that fails (EIO) refuses the command IO_ERROR; one that fails EINVAL does not', { skip }, () => {
  assert.equal(runChild('fail').outcome, 'IO_ERROR');
  assert.equal(runChild('einval').outcome, 'NOT_SUPPORTED');
});
