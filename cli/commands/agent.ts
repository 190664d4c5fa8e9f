import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import type { KernelChoice } from '../../agent/agent-runtime.js';
import { telemetryBatchLimits } from '../../core/protocol/limits.js';
import { readFileBounded } from '../bounded-read.js';
import { integerOption, requireOption, stringOption, type CliIo, type Command } from '../command.js';
import { durationOption, type DurationOptionSpec } from '../duration-option.js';

const caFileBytesMax = 64 * 1024;
/**
 * A pairing token is one short line (`sdcpt_` and 43 characters); a file or stdin much longer is
 * not one, and is refused after reading this much and one byte more, never read whole.
 */
const pairingTokenBytesMax = 4096;
/** Environment variable that may carry the pairing token: not in argv, so not in `ps` or the shell's history. */
export const pairingTokenEnv = 'SDC_PAIRING_TOKEN';
const kernelChoices: readonly KernelChoice[] = ['mock', 'native', 'auto'];

/**
 * The longest a sample waits for its TELEMETRY_BATCH to fill (decision 0004, "Batches"): default
 * the agent core's 30 s; at most an hour, as --telemetry-interval-ms, so a batching device is never
 * silent for longer than a non-batching one may be.
 */
const batchDelay: DurationOptionSpec = { name: 'telemetry-batch-delay', fallbackMs: 30_000, minMs: 100, maxMs: 3_600_000 };

/** `sdc agent`: enroll on first run, then keep a session with a gateway until SIGINT/SIGTERM. */
export const agentCommand: Command = {
  name: 'agent',
  summary: 'Run the device agent: enroll on first run, then stay connected to a gateway',
  usage: '--dir A --server URL [--device ID (--pairing-token-file F | --pairing-token-stdin | $SDC_PAIRING_TOKEN)] [--ca FILE] [--kernel mock|native|auto] [--telemetry-interval-ms N]'
    + ' [--telemetry-samples-per-frame N [--telemetry-batch-delay D]] [--telemetry-acks] [--artifact-origin URL ...]',
  optionHelp: [
    ['--dir A', 'Agent directory: device key, certificate, trust.json, command journal'],
    ['--server URL', 'Control plane base URL (https://host:port); needed for the first enrollment'],
    ['--device ID', 'Device id to enroll as (first run only)'],
    ['--pairing-token-file F', 'One-time pairing token from the operator, the first line of file F (first run only); or --pairing-token-stdin, or $SDC_PAIRING_TOKEN'],
    ['--pairing-token-stdin', 'Read the pairing token from the first line of stdin (first run only)'],
    ['--pairing-token T', 'The token on the command line: works, with a warning, since `ps` and the shell history show it to other local users, who could enroll first'],
    ['--ca FILE', "The deployment's root CA certificate (PEM); needed for the first enrollment"],
    ['--kernel K', 'Kernel backend: native (the C library; npm run kernel:build), mock (an in-process simulation: it locks and installs nothing; only when named) or auto (native when built, else refuses to start; default auto)'],
    ['--telemetry-interval-ms N', 'Milliseconds between telemetry samples (default 5000)'],
    ['--telemetry-samples-per-frame N', `Samples per TELEMETRY_BATCH frame, 1 to ${telemetryBatchLimits.samplesPerFrameMax} (default 1: one TELEMETRY frame per sample, as before). Above 1 the agent asks the gateway for batches at AUTH; its gateways must be upgraded first`],
    ['--telemetry-batch-delay D', 'Longest a sample waits for its batch to fill while connected, 100ms to 1h (default 30s); only with --telemetry-samples-per-frame above 1'],
    ['--artifact-origin URL', 'An https origin (https://host[:port]) besides the control plane\'s that OTA notices may name for the artifact download, e.g. the S3 endpoint of `sdc serve --s3-endpoint`; repeatable. Any other URL is not fetched (AGENT_OTA_URL_REFUSED): the artifact then comes from the control plane\'s TUF targets'],
    ['--telemetry-acks', 'Offer telemetry acknowledgements at AUTH (TELEMETRY_ACK): samples are kept until the gateway says they are on the bus, and sent again in the next session if not (default off). An older gateway refuses the AUTH member: upgrade gateways first'],
  ],
  options: {
    dir: { type: 'string' }, server: { type: 'string' }, device: { type: 'string' }, 'pairing-token': { type: 'string' },
    'pairing-token-file': { type: 'string' }, 'pairing-token-stdin': { type: 'boolean' }, 'artifact-origin': { type: 'string', multiple: true },
    ca: { type: 'string' }, kernel: { type: 'string' }, 'telemetry-interval-ms': { type: 'string' },
    'telemetry-samples-per-frame': { type: 'string' }, 'telemetry-batch-delay': { type: 'string' }, 'telemetry-acks': { type: 'boolean' },
  },
  async run(args, io) {
    const dir = requireOption(args, 'dir');
    const kernel = stringOption(args, 'kernel', 'auto') as KernelChoice;
    if (!kernelChoices.includes(kernel)) throw new SdcError('CLI_USAGE', `--kernel must be one of ${kernelChoices.join(', ')}`);
    const telemetryIntervalMs = integerOption(args, 'telemetry-interval-ms', 5_000, 100, 3_600_000);
    const samplesPerFrame = integerOption(args, 'telemetry-samples-per-frame', 1, 1, telemetryBatchLimits.samplesPerFrameMax);
    const batchDelayMs = durationOption(args, batchDelay);
    if (samplesPerFrame === 1 && args.values[batchDelay.name] !== undefined) {
      throw new SdcError('CLI_USAGE', '--telemetry-batch-delay needs --telemetry-samples-per-frame above 1 (one sample per frame is never delayed)');
    }
    const server = args.values.server as string | undefined;
    if (server !== undefined && !/^https:\/\//.test(server)) throw new SdcError('CLI_USAGE', '--server must be an https:// URL');
    const token = await readPairingToken(args.values, io);
    const device = args.values.device as string | undefined;
    if ((token === undefined) !== (device === undefined)) throw new SdcError('CLI_USAGE', '--device and a pairing token (--pairing-token-file, --pairing-token-stdin or $SDC_PAIRING_TOKEN) go together');
    const artifactOrigins = ((args.values['artifact-origin'] ?? []) as string[]).map(artifactOrigin);
    const caFile = args.values.ca as string | undefined;
    const caPem = caFile === undefined ? undefined : await readCaFile(caFile);
    // Loaded here, not at the top: the agent's modules are a large part of the CLI's start-up time (`sdc --help`).
    const [{ default: pino }, { runAgent }, { systemClock, systemRandom, systemScheduler }] = await Promise.all([
      import('pino'), import('../../agent/agent-runtime.js'), import('../../runtime/system.js'),
    ]);
    const logger = pino({ level: io.env.SDC_LOG_LEVEL ?? 'info', base: { role: 'agent' } }, pino.destination(2));
    const agent = await runAgent({
      dir, kernel, telemetryIntervalMs, clock: systemClock,
      // Only a batching agent gets the option: a default one's AUTH stays byte for byte as before.
      ...(samplesPerFrame > 1 ? { telemetryBatch: { samplesPerFrameMax: samplesPerFrame, delayMs: batchDelayMs } } : {}), random: systemRandom, scheduler: systemScheduler, logger,
      ...(server ? { serverUrl: server } : {}), ...(device ? { deviceId: device } : {}), ...(token ? { pairingToken: token } : {}),
      ...(caPem ? { caPem } : {}), ...(args.values['telemetry-acks'] === true ? { telemetryAcks: true } : {}),
      ...(artifactOrigins.length === 0 ? {} : { ota: { artifactOrigins } }),
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

/**
 * The pairing token from at most one place: --pairing-token-file, --pairing-token-stdin,
 * $SDC_PAIRING_TOKEN, or (warned) --pairing-token. Undefined when none is given (an enrolled agent).
 */
export async function readPairingToken(values: Readonly<Record<string, unknown>>, io: Pick<CliIo, 'env' | 'readStdin' | 'stderr'>): Promise<string | undefined> {
  const file = values['pairing-token-file'] as string | undefined;
  const stdin = values['pairing-token-stdin'] === true;
  const argv = values['pairing-token'] as string | undefined;
  const env = io.env[pairingTokenEnv];
  const given = [file !== undefined, stdin, argv !== undefined].filter(Boolean).length;
  if (given > 1) throw new SdcError('CLI_USAGE', 'give the pairing token one way: --pairing-token-file, --pairing-token-stdin or --pairing-token');
  if (file !== undefined) return firstLine(await readFileBounded(file, pairingTokenBytesMax, 'pairing token file'), `pairing token file ${file}`);
  if (stdin) {
    const text = await io.readStdin({ bytesMax: pairingTokenBytesMax });
    if (Buffer.byteLength(text) > pairingTokenBytesMax) throw new SdcError('CLI_INPUT', `stdin is over ${pairingTokenBytesMax} bytes: not a pairing token`);
    return firstLine(text, 'stdin');
  }
  if (argv !== undefined) {
    io.stderr('warning: --pairing-token puts the token where `ps` and the shell history show it; use --pairing-token-file, --pairing-token-stdin or $SDC_PAIRING_TOKEN\n');
    return argv;
  }
  return env !== undefined && env.length > 0 ? env : undefined;
}

function firstLine(text: string, where: string): string {
  const line = (text.split(/\r?\n/)[0] ?? '').trim();
  if (line.length === 0) throw new SdcError('CLI_INPUT', `no pairing token on the first line of ${where}`);
  return line;
}

/** `--artifact-origin`: an https origin, nothing after it (the agent compares origins exactly). */
function artifactOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SdcError('CLI_USAGE', `--artifact-origin ${value} is not a URL`);
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new SdcError('CLI_USAGE', `--artifact-origin ${value} is not an https origin such as https://s3.example:9000`);
  }
  return url.origin;
}

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
