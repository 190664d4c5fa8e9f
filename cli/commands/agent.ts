import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import type { KernelChoice } from '../../agent/agent-runtime.js';
import { integerOption, requireOption, stringOption, type Command } from '../command.js';

const caFileBytesMax = 64 * 1024;
const kernelChoices: readonly KernelChoice[] = ['mock', 'native', 'auto'];

/** `sdc agent`: enroll on first run, then keep a session with a gateway until SIGINT/SIGTERM. */
export const agentCommand: Command = {
  name: 'agent',
  summary: 'Run the device agent: enroll on first run, then stay connected to a gateway',
  usage: '--dir A --server URL [--device ID --pairing-token T] [--ca FILE] [--kernel mock|native|auto] [--telemetry-interval-ms N]',
  optionHelp: [
    ['--dir A', 'Agent directory: device key, certificate, trust.json, command journal'],
    ['--server URL', 'Control plane base URL (https://host:port); needed for the first enrollment'],
    ['--device ID', 'Device id to enroll as (first run only)'],
    ['--pairing-token T', 'One-time pairing token from the operator (first run only)'],
    ['--ca FILE', "The deployment's root CA certificate (PEM); needed for the first enrollment"],
    ['--kernel K', 'Kernel backend: mock, native or auto (native when built, else mock; default auto)'],
    ['--telemetry-interval-ms N', 'Milliseconds between telemetry samples (default 5000)'],
  ],
  options: {
    dir: { type: 'string' }, server: { type: 'string' }, device: { type: 'string' }, 'pairing-token': { type: 'string' },
    ca: { type: 'string' }, kernel: { type: 'string' }, 'telemetry-interval-ms': { type: 'string' },
  },
  async run(args, io) {
    const dir = requireOption(args, 'dir');
    const kernel = stringOption(args, 'kernel', 'auto') as KernelChoice;
    if (!kernelChoices.includes(kernel)) throw new SdcError('CLI_USAGE', `--kernel must be one of ${kernelChoices.join(', ')}`);
    const telemetryIntervalMs = integerOption(args, 'telemetry-interval-ms', 5_000, 100, 3_600_000);
    const server = args.values.server as string | undefined;
    if (server !== undefined && !/^https:\/\//.test(server)) throw new SdcError('CLI_USAGE', '--server must be an https:// URL');
    const token = args.values['pairing-token'] as string | undefined;
    const device = args.values.device as string | undefined;
    if ((token === undefined) !== (device === undefined)) throw new SdcError('CLI_USAGE', '--device and --pairing-token go together');
    const caFile = args.values.ca as string | undefined;
    const caPem = caFile === undefined ? undefined : await readCaFile(caFile);
    // Loaded here, not at the top: the agent's modules are a large part of the CLI's start-up time (`sdc --help`).
    const [{ default: pino }, { runAgent }, { systemClock, systemRandom, systemScheduler }] = await Promise.all([
      import('pino'), import('../../agent/agent-runtime.js'), import('../../runtime/system.js'),
    ]);
    const logger = pino({ level: io.env.SDC_LOG_LEVEL ?? 'info', base: { role: 'agent' } }, pino.destination(2));
    const agent = await runAgent({
      dir, kernel, telemetryIntervalMs, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
      ...(server ? { serverUrl: server } : {}), ...(device ? { deviceId: device } : {}), ...(token ? { pairingToken: token } : {}),
      ...(caPem ? { caPem } : {}),
    });
    io.stdout(`${agent.enrolledNow ? 'enrolled' : 'loaded'} device ${agent.identity.deviceId}; kernel ${agent.kernel.backend}; connecting to ${agent.identity.trust.gateway_urls.join(', ')}\n`);
    // systemScheduler timers are unref'd; this keeps the process alive until a signal.
    const keepAlive = setInterval(() => undefined, 60_000);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    io.stdout(`${signal}: closing the session\n`);
    await agent.stop();
    clearInterval(keepAlive);
    return 0;
  },
};

async function readCaFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SdcError('CLI_INPUT', `cannot read CA file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text.length > caFileBytesMax || !text.includes('-----BEGIN CERTIFICATE-----')) throw new SdcError('CLI_INPUT', `${path} is not a PEM certificate file`);
  return text;
}
