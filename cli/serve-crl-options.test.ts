import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crlStaleGraceMsDefault } from '../server/deployment/crl-file-watch.js';
import { parseCommandArgs, type CliIo } from './command.js';
import { deploymentOptions, gatewayCommand, serveCommand } from './commands/serve.js';
import { main } from './main.js';

const io = (): CliIo & { out: string[]; err: string[] } => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => { out.push(t); }, stderr: (t) => { err.push(t); }, readStdin: async () => '', env: {} };
};

describe('sdc serve and sdc gateway: --crl-stale-policy and --crl-stale-grace-ms (decision 0021)', () => {
  it('reach the deployment\'s crlStale option; none given sets none (fail-open, the default grace)', async () => {
    const given = ['--crl-stale-policy', 'fail-closed', '--crl-stale-grace-ms', '0'];
    assert.deepEqual((await deploymentOptions(parseCommandArgs(serveCommand, given), io(), true)).crlStale, { policy: 'fail-closed', graceMs: 0 });
    const gateway = await deploymentOptions(parseCommandArgs(gatewayCommand, [...given, '--redis', 'redis://127.0.0.1:6379', '--gateway-id', 'gw-2']), io(), false);
    assert.deepEqual(gateway.crlStale, { policy: 'fail-closed', graceMs: 0 });
    assert.equal('crlStale' in await deploymentOptions(parseCommandArgs(serveCommand, []), io(), true), false);
  });

  it('a policy other than fail-open or fail-closed, or a grace beyond 7 days, is one CLI_USAGE line (exit 2)', async () => {
    for (const [flag, message] of [
      ['--crl-stale-policy=open', '--crl-stale-policy must be fail-open or fail-closed, got open'],
      ['--crl-stale-grace-ms=604800001', '--crl-stale-grace-ms must be an integer from 0 to 604800000'],
    ] as const) {
      const run = io();
      assert.equal(await main(['serve', '--dir', '/nonexistent/sdc-crl-options', flag], run), 2, flag);
      assert.equal(run.err.join(''), `sdc: CLI_USAGE: ${message}\n`);
    }
  });

  it('the help names the gateway\'s default grace', async () => {
    const run = io();
    await main(['serve', '--help'], run);
    assert.match(run.out.join(''), new RegExp(`--crl-stale-grace-ms N +How long past its nextUpdate the CRL still counts as current \\(default ${crlStaleGraceMsDefault},`));
  });

  it('sdc gateway --crl-url reaches the deployment\'s crlUrl; it must be https; sdc serve has no such flag (its gateway reads the file its own control plane writes)', async () => {
    const gatewayArgs = ['--redis', 'redis://127.0.0.1:6379', '--gateway-id', 'gw-2'];
    const given = await deploymentOptions(parseCommandArgs(gatewayCommand, [...gatewayArgs, '--crl-url', 'https://control-plane:8080/v1/crl']), io(), false);
    assert.equal(given.crlUrl?.href, 'https://control-plane:8080/v1/crl');
    assert.equal('crlUrl' in await deploymentOptions(parseCommandArgs(gatewayCommand, gatewayArgs), io(), false), false);
    for (const [url, message] of [
      ['http://control-plane:8080/v1/crl', '--crl-url http://control-plane:8080/v1/crl is not https (the control plane\'s certificate is checked against our root CA)'],
      ['control-plane/v1/crl', '--crl-url control-plane/v1/crl is not a URL'],
    ] as const) {
      const run = io();
      assert.equal(await main(['gateway', '--dir', '/nonexistent/sdc-crl-options', ...gatewayArgs, `--crl-url=${url}`], run), 2, url);
      assert.equal(run.err.join(''), `sdc: CLI_USAGE: ${message}\n`);
    }
    const run = io();
    assert.equal(await main(['serve', '--dir', '/nonexistent/sdc-crl-options', '--crl-url=https://x/v1/crl'], run), 2);
  });
});
