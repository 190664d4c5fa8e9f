import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportFileMode, writeReportFile, writeReportFiles } from './report.js';

/**
 * The one writer of --out DIR files (bench, sim, chaos, report run): a symlink at the destination
 * is replaced by the file, never followed, so its target stays untouched.
 */
test('writeReportFile replaces a symlink at the destination instead of writing through it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-report-file-'));
  try {
    const target = join(dir, 'victim.txt');
    await writeFile(target, 'untouched\n');
    const path = join(dir, 'summary.json');
    await symlink(target, path);
    await writeReportFile(path, '{"ok":true}\n');
    assert.equal(await readFile(target, 'utf8'), 'untouched\n');
    assert.ok((await lstat(path)).isFile(), 'the link itself was replaced by a regular file');
    assert.equal(await readFile(path, 'utf8'), '{"ok":true}\n');
    if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, reportFileMode);

    await symlink(target, join(dir, 'report.md'));
    assert.deepEqual(await writeReportFiles(dir, { 'report.md': '# report\n' }), [join(dir, 'report.md')]);
    assert.equal(await readFile(target, 'utf8'), 'untouched\n');
    assert.equal(await readFile(join(dir, 'report.md'), 'utf8'), '# report\n');
    assert.deepEqual((await readdir(dir)).filter((name) => name.endsWith('.tmp')), [], 'no temp file left behind');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
