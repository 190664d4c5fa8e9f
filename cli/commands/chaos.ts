import { randomInt } from 'node:crypto';
import pino from 'pino';
import { startChaosServer, toxiproxyDefaultPort } from '../../chaos/proxy/server.js';
import { integerOption, stringOption, type CliIo, type Command, type CommandGroup, type ParsedCommandArgs } from '../command.js';
import { matrixCommand } from './chaos-matrix-command.js';
import { runCommand } from './chaos-run-command.js';

/** A default seed fits randomInt's range (below 2^48) and is printed, so a run can be replayed. */
const seedMax = 2 ** 47;

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/** Runs the proxy until `stopped` settles (a signal from the command line; the test's promise). */
export async function serveChaos(args: ParsedCommandArgs, io: CliIo, stopped: () => Promise<string>): Promise<number> {
  const host = stringOption(args, 'host', '127.0.0.1');
  const port = integerOption(args, 'port', toxiproxyDefaultPort, 0, 65_535);
  const seed = integerOption(args, 'seed', randomInt(seedMax), 0, Number.MAX_SAFE_INTEGER);
  const allowExternalListen = args.values['allow-external-listen'] === true;
  const logger = pino({ level: io.env.SDC_LOG_LEVEL ?? 'info' }, pino.destination(2));
  const server = await startChaosServer({ host, port, seed, logger, allowExternalListen });
  io.stdout(`chaos API  ${server.url} (Toxiproxy 2.x HTTP API; point any Toxiproxy client here)\n`);
  io.stdout(`seed       ${seed} (--seed ${seed} replays the toxicity draws)\n`);
  const signal = await stopped();
  io.stdout(`${signal}: stopping\n`);
  await server.close();
  return 0;
}

const serve: Command = {
  name: 'serve',
  summary: 'Run the Toxiproxy-compatible TCP fault proxy; proxies and toxics are made through its HTTP API',
  usage: '[--host H] [--port P] [--seed S] [--allow-external-listen]',
  optionHelp: [
    ['--host H', 'Address of the HTTP API (default 127.0.0.1)'],
    ['--port P', `Port of the HTTP API (default ${toxiproxyDefaultPort}, Toxiproxy's; 0 picks a free one)`],
    ['--seed S', 'Seed of the toxicity draws, jitter and slice sizes (default: random, printed)'],
    ['--allow-external-listen', 'Let proxies listen on addresses other than loopback (0.0.0.0...); the API has no authentication, so off by default'],
  ],
  options: { host: { type: 'string' }, port: { type: 'string' }, seed: { type: 'string' }, 'allow-external-listen': { type: 'boolean' } },
  run: (args, io) => serveChaos(args, io, untilSignal),
};

export const chaosGroup: CommandGroup = {
  name: 'chaos',
  summary: 'Fault injection: a Toxiproxy-compatible proxy, faults on real sockets, the fault matrix (docs/chaos.md)',
  commands: [serve, runCommand, matrixCommand],
};
