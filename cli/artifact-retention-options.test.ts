import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import type { CliIo } from './command.js';
import { artifactRetentionOptions, parseByteSize } from './artifact-retention-options.js';
import { main } from './main.js';

const args = (values: Record<string, string>) => ({ values, positionals: [] }) as never;

describe('sdc serve artifact retention flags and environment', () => {
  it('a flag wins over its variable, a variable is used without the flag, nothing given is nothing set', () => {
    assert.deepEqual(artifactRetentionOptions(args({}), {}), {});
    assert.deepEqual(artifactRetentionOptions(args({ 'artifact-max-age': '7d', 'artifact-max-bytes': '512MiB', 'artifact-sweep-interval': '15m' }), {
      SDC_ARTIFACT_MAX_AGE: '1d', SDC_ARTIFACT_MAX_BYTES: '1', SDC_ARTIFACT_SWEEP_INTERVAL: '1h',
    }), { artifactRetention: { ageMsMax: 7 * 86_400_000, bytesMax: 512 * 1024 * 1024 }, artifactRetentionSweepIntervalMs: 15 * 60_000 });
    assert.deepEqual(artifactRetentionOptions(args({}), { SDC_ARTIFACT_MAX_BYTES: '2GiB', SDC_ARTIFACT_SWEEP_INTERVAL: '30s' }),
      { artifactRetention: { bytesMax: 2 * 1024 ** 3 }, artifactRetentionSweepIntervalMs: 30_000 });
  });

  it('bad values are CLI_USAGE naming where they came from', () => {
    const refused = (values: Record<string, string>, env: Record<string, string>, pattern: RegExp) => assert.throws(
      () => artifactRetentionOptions(args(values), env), (error: unknown) => SdcError.is(error, 'CLI_USAGE') && pattern.test(error.message), pattern.source);
    refused({ 'artifact-max-age': '30' }, {}, /--artifact-max-age must be a number with a unit/);
    refused({}, { SDC_ARTIFACT_MAX_AGE: '10s' }, /\$SDC_ARTIFACT_MAX_AGE must be from 1m/);
    refused({ 'artifact-max-bytes': '1.5GiB' }, {}, /--artifact-max-bytes must be a whole number/);
    refused({ 'artifact-max-bytes': '0' }, {}, /--artifact-max-bytes must be from 1 byte/);
    refused({}, { SDC_ARTIFACT_SWEEP_INTERVAL: '2d' }, /\$SDC_ARTIFACT_SWEEP_INTERVAL must be from 10s to 1d/);
    assert.equal(parseByteSize('x', '10KiB'), 10_240);
  });

  it('sdc serve --help lists the three flags with their variables', async () => {
    let stdout = '';
    const io: CliIo = { stdout: (text) => { stdout += text; }, stderr: () => undefined, readStdin: async () => '', env: {} };
    assert.equal(await main(['serve', '--help'], io), 0);
    for (const [flag, variable] of [['--artifact-max-age', 'SDC_ARTIFACT_MAX_AGE'], ['--artifact-max-bytes', 'SDC_ARTIFACT_MAX_BYTES'], ['--artifact-sweep-interval', 'SDC_ARTIFACT_SWEEP_INTERVAL']]) {
      assert.match(stdout, new RegExp(`${flag} .*\\$${variable}`), flag);
    }
  });
});
