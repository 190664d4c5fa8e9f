import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SdcError } from '../core/errors/index.js';
import type { CliIo } from './command.js';
import { main } from './main.js';
import { telemetryRetentionOptions } from './telemetry-retention-options.js';

const args = (values: Record<string, string>) => ({ values, positionals: [] }) as never;

describe('sdc serve --telemetry-rows-per-device and $SDC_TELEMETRY_ROWS_PER_DEVICE', () => {
  it('the flag wins over the variable, the variable is used without the flag, nothing given is nothing set', () => {
    assert.deepEqual(telemetryRetentionOptions(args({}), {}), {});
    assert.deepEqual(telemetryRetentionOptions(args({ 'telemetry-rows-per-device': '500' }), { SDC_TELEMETRY_ROWS_PER_DEVICE: '7' }), { telemetryRetention: { rowsPerDeviceMax: 500 } });
    assert.deepEqual(telemetryRetentionOptions(args({}), { SDC_TELEMETRY_ROWS_PER_DEVICE: '7' }), { telemetryRetention: { rowsPerDeviceMax: 7 } });
  });

  it('a value that is not a whole number from 1 to 10,000,000 is CLI_USAGE naming where it came from', () => {
    const refused = (values: Record<string, string>, env: Record<string, string>, pattern: RegExp) => assert.throws(
      () => telemetryRetentionOptions(args(values), env), (error: unknown) => SdcError.is(error, 'CLI_USAGE') && pattern.test(error.message), pattern.source);
    refused({ 'telemetry-rows-per-device': '0' }, {}, /--telemetry-rows-per-device must be a whole number of rows from 1/);
    refused({ 'telemetry-rows-per-device': '1.5' }, {}, /--telemetry-rows-per-device must be/);
    refused({}, { SDC_TELEMETRY_ROWS_PER_DEVICE: '10000001' }, /\$SDC_TELEMETRY_ROWS_PER_DEVICE must be .* to 10,000,000/);
  });

  it('sdc serve --help lists the flag with its variable', async () => {
    let stdout = '';
    const io: CliIo = { stdout: (text) => { stdout += text; }, stderr: () => undefined, readStdin: async () => '', env: {} };
    assert.equal(await main(['serve', '--help'], io), 0);
    assert.match(stdout, /--telemetry-rows-per-device N .*\$SDC_TELEMETRY_ROWS_PER_DEVICE/);
  });
});
