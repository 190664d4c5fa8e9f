import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { systemClock, systemRandom, systemScheduler } from '../runtime/system.js';
import { startDeployment } from '../server/deployment/deployment.js';
import { initDeployment } from '../server/materials/materials.js';
import { gatewayDefaults } from '../server/gateway/gateway-defaults.js';
import { handshakeLimitsDefault } from '../server/gateway/gateway-server.js';
import { parseCommandArgs, type CliIo } from './command.js';
import { deploymentOptions, gatewayCommand, serveCommand } from './commands/serve.js';
import { gatewayAuthTimeoutFlag, gatewayHandshakeFlags } from './gateway-limit-options.js';
import { main } from './main.js';

const io = (): CliIo & { out: string[]; err: string[] } => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t) => { out.push(t); }, stderr: (t) => { err.push(t); }, readStdin: async () => '', env: {} };
};

const gatewayArgs = ['--redis', 'redis://127.0.0.1:6379', '--gateway-id', 'gw-2'];
const given = [
  '--gateway-handshake-timeout-ms', '3000', '--gateway-pending-handshakes-per-source-max', '2048', '--gateway-handshakes-in-flight-max', '512',
  '--gateway-handshakes-in-flight-min', '64', '--gateway-handshake-queue-max', '0', '--gateway-auth-timeout-ms', '4500',
];
const expected = { handshakeTimeoutMs: 3_000, pendingHandshakesPerSourceMax: 2_048, handshakesInFlightMax: 512, handshakesInFlightMin: 64, handshakeQueueMax: 0 };

describe('sdc serve and sdc gateway: the gateway\'s TLS handshake bounds and AUTH timeout as flags', () => {
  it('each flag reaches its gateway option (handshake bounds to the gateway server, the AUTH timeout to the gateway core); none given sets none', async () => {
    for (const [command, withControlPlane, extra] of [[serveCommand, true, []], [gatewayCommand, false, gatewayArgs]] as const) {
      const options = await deploymentOptions(parseCommandArgs(command, [...given, ...extra]), io(), withControlPlane);
      assert.deepEqual(options.gatewayHandshakeLimits, expected);
      assert.equal(options.gateway.authTimeoutMs, 4_500);
      const none = await deploymentOptions(parseCommandArgs(command, [...extra]), io(), withControlPlane);
      assert.equal('gatewayHandshakeLimits' in none, false);
      assert.equal('authTimeoutMs' in none.gateway, false);
    }
    const one = await deploymentOptions(parseCommandArgs(serveCommand, ['--gateway-pending-handshakes-per-source-max', '1000']), io(), true);
    assert.deepEqual(one.gatewayHandshakeLimits, { pendingHandshakesPerSourceMax: 1_000 });
  });

  it('the deployment hands them to the gateway it starts: with --gateway-pending-handshakes-per-source-max 1, a second silent socket from one address is dropped (GATEWAY_SOURCE_LIMIT) while the first waits', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sdc-gateway-handshake-deployment-'));
    const sockets: Socket[] = [];
    try {
      const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
      // The flags as sdc serve parses them; the ports of the test's own choosing.
      const { gatewayHandshakeLimits, gateway } = await deploymentOptions(parseCommandArgs(serveCommand, [
        '--gateway-pending-handshakes-per-source-max', '1', '--gateway-handshake-timeout-ms', '120000', '--gateway-auth-timeout-ms', '4500',
      ]), io(), true);
      const deployment = await startDeployment({
        materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: pino({ level: 'silent' }),
        apiPort: 0, gatewayPort: 0, scryptParams: { N: 1024, r: 8, p: 1 }, gateway, ...(gatewayHandshakeLimits === undefined ? {} : { gatewayHandshakeLimits }),
      });
      try {
        const silent = async () => {
          const socket = connect({ host: '127.0.0.1', port: deployment.gatewayServer.address.port });
          sockets.push(socket);
          let closed = false;
          socket.on('close', () => { closed = true; }).on('error', () => undefined);
          await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
          return { closed: () => closed };
        };
        const first = await silent();
        const second = await silent();
        const dropped = async () => Number(/sdc_websocket_errors_total\{code="GATEWAY_SOURCE_LIMIT"\} (\d+)/.exec(await deployment.metrics.text())?.[1] ?? 0);
        // With the default (64 per address) the second socket waits for its handshake like the first: never dropped, until both time out.
        // A wait for a condition, bounded only so that a defect fails instead of hanging (60 s: a machine busy with other work is slow, never wrong).
        for (let i = 0; i < 1_200 && !(second.closed() && await dropped() === 1); i++) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(second.closed(), true, 'the second socket was dropped');
        assert.equal(await dropped(), 1);
        assert.equal(first.closed(), false, 'the first still waits for its handshake (120 s timeout)');
      } finally {
        await deployment.stop();
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('a value that is not a whole number within the flag\'s bounds, or a floor above the bound, is one CLI_USAGE line (exit 2), before the data directory is touched', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'sdc-gateway-handshake-'));
    try {
      const dir = join(parent, 'data');
      const outOfBounds: Array<[string, string, string]> = [
        ['gateway-handshake-timeout-ms', '99', '100 to 120000'], ['gateway-handshake-timeout-ms', '120001', '100 to 120000'],
        ['gateway-handshake-timeout-ms', '5s', '100 to 120000'], ['gateway-pending-handshakes-per-source-max', '0', '1 to 1000000'],
        ['gateway-handshakes-in-flight-max', '-1', '1 to 1000000'], ['gateway-handshakes-in-flight-min', '1.5', '1 to 1000000'],
        ['gateway-handshake-queue-max', '1000001', '0 to 1000000'], ['gateway-handshake-queue-max', '', '0 to 1000000'],
        ['gateway-auth-timeout-ms', '0', '100 to 120000'], ['gateway-auth-timeout-ms', '1e4', '100 to 120000'],
      ];
      const cases: Array<[string[], string]> = [
        ...outOfBounds.map(([flag, value, bounds]): [string[], string] => [[`--${flag}=${value}`], `--${flag} must be an integer from ${bounds}`]),
        [['--gateway-handshakes-in-flight-min', '300'], '--gateway-handshakes-in-flight-min 300 is above the bound on handshakes at once (256, the default of --gateway-handshakes-in-flight-max)'],
        [['--gateway-handshakes-in-flight-max', '16', '--gateway-handshakes-in-flight-min', '17'], '--gateway-handshakes-in-flight-min 17 is above the bound on handshakes at once (16)'],
      ];
      for (const [flags, message] of cases) {
        for (const command of [['serve'], ['gateway', ...gatewayArgs]]) {
          const run = io();
          assert.equal(await main([...command, '--dir', dir, ...flags], run), 2, `${command[0]} ${flags.join(' ')}`);
          assert.equal(run.err.join(''), `sdc: CLI_USAGE: ${message}\n`);
        }
      }
      await assert.rejects(access(dir), 'nothing was created');
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('--help lists every flag with the gateway\'s own default, for sdc serve and sdc gateway', async () => {
    for (const { option, fallback } of gatewayHandshakeFlags) assert.equal(fallback, handshakeLimitsDefault[option], option);
    assert.equal(gatewayAuthTimeoutFlag.fallback, gatewayDefaults.authTimeoutMs);
    for (const command of ['serve', 'gateway']) {
      const run = io();
      assert.equal(await main([command, '--help'], run), 0);
      for (const { flag, fallback } of [...gatewayHandshakeFlags, gatewayAuthTimeoutFlag]) {
        assert.match(run.out.join(''), new RegExp(`--${flag} N .*\\(default ${fallback.toLocaleString('en-US')};`), `${command} --${flag}`);
      }
    }
  });
});
