import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { CliIo } from '../command.js';
import { main } from '../main.js';

async function sdc(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('sdc help, --version and option parsing', () => {
  it('sdc help <command> prints that command\'s help, as --help does', async () => {
    const viaHelp = await sdc(['help', 'sim']);
    const viaFlag = await sdc(['sim', '--help']);
    assert.equal(viaHelp.code, 0);
    assert.match(viaHelp.stdout, /^Usage: sdc sim /);
    assert.equal(viaHelp.stdout, viaFlag.stdout);
    const sub = await sdc(['help', 'pki', 'issue']);
    assert.match(sub.stdout, /^Usage: sdc pki issue /);
    const unknown = await sdc(['help', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^sdc: CLI_USAGE: unknown command 'nope'/);
  });

  it('sdc --version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const run = await sdc([flag]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `sdc ${version}\n`);
    }
    assert.match((await sdc(['--help'])).stdout, /sdc --version/);
  });

  it('a negative number is refused in one CLI_USAGE line naming the option, not node\'s three-line message', async () => {
    for (const argv of [['sim', '--agents', '-5'], ['demo', '--agents', '-5'], ['serve', '--api-port', '-1']]) {
      const run = await sdc(argv);
      assert.equal(run.code, 2, argv.join(' '));
      assert.match(run.stderr, new RegExp(`^sdc: CLI_USAGE: ${argv[1]} must be an integer from \\d+ to \\d+\\n$`), argv.join(' '));
    }
    const dangling = await sdc(['sim', '--agents', '--json']);
    assert.equal(dangling.code, 2);
    assert.equal(dangling.stderr.split('\n').length, 2, dangling.stderr);
  });

  it('serve and gateway help agree with what the commands do', async () => {
    const serve = (await sdc(['serve', '--help'])).stdout;
    assert.match(serve, /^Usage: sdc serve \[--dir D\]/);
    assert.match(serve, /--dir D\s+Data directory \(default \.\/data\)/);
    const gateway = (await sdc(['gateway', '--help'])).stdout;
    assert.match(gateway, /--redis URL\s+.*required/);
    assert.doesNotMatch(gateway, /default: embedded/);
    assert.doesNotMatch(gateway, /--mysql/);
    const noRedis = await sdc(['gateway', '--gateway-id', 'gw-2']);
    assert.equal(noRedis.code, 2);
    assert.match(noRedis.stderr, /CLI_USAGE: a separate gateway process needs --redis/);
    const noId = await sdc(['gateway', '--redis', 'redis://127.0.0.1:6379']);
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /CLI_USAGE: missing required option --gateway-id/);
  });
});
