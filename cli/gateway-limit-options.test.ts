import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { establishedLimitsDefault } from '../server/gateway/gateway-server.js';
import { parseCommandArgs, type CliIo } from './command.js';
import { deploymentOptions, gatewayCommand, serveCommand } from './commands/serve.js';
import { gatewayLimitFlags } from './gateway-limit-options.js';
import { main } from './main.js';

const io = (): CliIo & { out: string[]; err: string[] } => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => { out.push(t); }, stderr: (t) => { err.push(t); }, readStdin: async () => '', env: {} };
};

const given = [
  '--gateway-upgrade-timeout-ms', '2500', '--gateway-sockets-per-source-max', '60000',
  '--gateway-unauthenticated-sockets-per-source-max', '4096', '--gateway-unauthenticated-sockets-per-certificate-max', '2',
  '--gateway-socket-buffered-bytes-max', '262144',
];
const expected = {
  upgradeTimeoutMs: 2_500, socketsPerSourceMax: 60_000, unauthenticatedSocketsPerSourceMax: 4_096, unauthenticatedSocketsPerCertificateMax: 2, socketBufferedBytesMax: 262_144,
};

describe('sdc serve and sdc gateway: the gateway\'s socket bounds past TLS as flags', () => {
  it('each flag reaches its gateway option (the deployment passes gatewayEstablishedLimits to the gateway server); none given sets none', async () => {
    const served = await deploymentOptions(parseCommandArgs(serveCommand, given), io(), true);
    assert.deepEqual(served.gatewayEstablishedLimits, expected);
    const gateway = await deploymentOptions(parseCommandArgs(gatewayCommand, [...given, '--redis', 'redis://127.0.0.1:6379', '--gateway-id', 'gw-2']), io(), false);
    assert.deepEqual(gateway.gatewayEstablishedLimits, expected);
    const one = await deploymentOptions(parseCommandArgs(serveCommand, ['--gateway-unauthenticated-sockets-per-source-max', '1000']), io(), true);
    assert.deepEqual(one.gatewayEstablishedLimits, { unauthenticatedSocketsPerSourceMax: 1_000 });
    assert.equal('gatewayEstablishedLimits' in await deploymentOptions(parseCommandArgs(serveCommand, []), io(), true), false);
  });

  it('a value that is not a whole number within the flag\'s bounds is one CLI_USAGE line (exit 2), before the data directory is touched', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-gateway-limits-'));
    try {
      const dir = join(parent, 'data');
      const cases: Array<[string, string, string]> = [
        ['gateway-upgrade-timeout-ms', '0', '100 to 120000'], ['gateway-upgrade-timeout-ms', '120001', '100 to 120000'],
        ['gateway-upgrade-timeout-ms', '10s', '100 to 120000'], ['gateway-sockets-per-source-max', '-1', '1 to 1000000'],
        ['gateway-unauthenticated-sockets-per-source-max', '1e3', '1 to 1000000'], ['gateway-unauthenticated-sockets-per-certificate-max', '1001', '1 to 1000'],
        ['gateway-unauthenticated-sockets-per-certificate-max', '', '1 to 1000'],
        // The floor is the largest message (review h11, F6: it was 65,536, half of it).
        ['gateway-socket-buffered-bytes-max', '131071', '131072 to 1073741824'], ['gateway-socket-buffered-bytes-max', '1073741825', '131072 to 1073741824'],
      ];
      for (const [flag, value, bounds] of cases) {
        for (const command of [['serve'], ['gateway', '--redis', 'redis://127.0.0.1:6379', '--gateway-id', 'gw-2']]) {
          const run = io();
          assert.equal(await main([...command, '--dir', dir, `--${flag}=${value}`], run), 2, `${command[0]} --${flag}=${value}`);
          assert.equal(run.err.join(''), `sdc: CLI_USAGE: --${flag} must be an integer from ${bounds}\n`);
        }
      }
      await assert.rejects(access(dir), 'nothing was created');
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('--help lists every flag with the gateway\'s own default, for sdc serve and sdc gateway', async () => {
    for (const { option, fallback } of gatewayLimitFlags) assert.equal(fallback, establishedLimitsDefault[option], option);
    for (const command of ['serve', 'gateway']) {
      const run = io();
      assert.equal(await main([command, '--help'], run), 0);
      for (const { flag, fallback } of gatewayLimitFlags) {
        assert.match(run.out.join(''), new RegExp(`--${flag} N .*\\(default ${fallback.toLocaleString('en-US')};`), `${command} --${flag}`);
      }
    }
  });
});
