import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchGroup } from './commands/bench.js';
import { parseCommandArgs, type CliIo } from './command.js';
import { benchReportErrors, benchReportSchemas } from '../bench/schemas.js';

/**
 * Each cheap bench runs at a tiny size through the real `sdc bench` command (with the suite's
 * --repeat/--out wrapping) and its JSON validates against its schema. The heavy benches
 * (roundtrip, connections, reconnect, api) validate in their own tests, which already start a
 * deployment.
 */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [name, ...rest] = argv;
  const command = benchGroup.commands.find((c) => c.name === name)!;
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, readStdin: async () => '', env: {} };
  const code = await command.run(parseCommandArgs(command, rest), io);
  return { code, stdout, stderr };
}

const tiny: Array<[string, string[]]> = [
  ['ed25519', ['--duration', '20ms']],
  ['ioctl', ['--calls', '50']],
  ['bus', ['--duration-ms', '10']],
  ['sim', ['--tier', 'model', '--duration', '1s', '--max-agents', '5']],
  ['ingest', ['--connections', '1', '--duration', '300ms']],
];

for (const [name, args] of tiny) {
  test(`sdc bench ${name} (tiny) --json validates against its schema`, async () => {
    const { code, stdout, stderr } = await run([name, ...args, '--json']);
    assert.equal(code, 0, stderr);
    const json = JSON.parse(stdout) as unknown;
    assert.deepEqual(benchReportErrors(json), []);
    assert.ok((json as { results: unknown[] }).results.length > 0);
  });
}

test('--repeat 2 --out: merged report validates, with spread; the files are JSON, CSV, Markdown, SVG', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sdc-bench-suite-'));
  try {
    const { code, stdout, stderr } = await run(['bus', '--duration-ms', '10', '--repeat', '2', '--json', '--out', dir]);
    assert.equal(code, 0, stderr);
    const json = JSON.parse(stdout) as { repeats: { count: number; spread: unknown[] } };
    assert.deepEqual(benchReportErrors(json), []);
    assert.equal(json.repeats.count, 2);
    assert.ok(json.repeats.spread.length > 0);
    assert.deepEqual((await readdir(dir)).sort(), ['bus-repeats.csv', 'bus.csv', 'bus.json', 'bus.md', 'bus.svg']);
    assert.match(await readFile(join(dir, 'bus.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>\n?$/);
    assert.match(await readFile(join(dir, 'bus.md'), 'utf8'), /Across 2 repeats/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the schemas refuse a report missing its key figures or its environment block', () => {
  assert.equal(Object.keys(benchReportSchemas).length, 10);
  const env = { node: 'v20', openssl: '3', platform: 'linux', arch: 'x64', cpu: 'c', cpu_count: 2, memory_total_mib: 1, git_commit: null, kernel: 'k', load_average_before: [1, 1, 1], load_average_after: [1, 1, 1], loaded_machine: false, seed: null };
  const good = { benchmark: 'ioctl', schema_version: 1, environment: env, parameters: {}, units: {}, results: [{ backend: 'mock', opcode: 'X', calls: 1, calls_per_s: 1, p50_us: 1, p99_us: 1 }] };
  assert.deepEqual(benchReportErrors(good), []);
  assert.notDeepEqual(benchReportErrors({ ...good, results: [{ backend: 'mock', opcode: 'X', calls: 1 }] }), []);
  const { load_average_after: _dropped, ...noLoad } = env;
  assert.notDeepEqual(benchReportErrors({ ...good, environment: noLoad }), []);
  assert.notDeepEqual(benchReportErrors({ ...good, benchmark: 'nope' }), []);
});
