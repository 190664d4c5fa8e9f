import type { KernelChoice } from '../../agent/agent-runtime.js';
import { SdcError } from '../../core/errors/index.js';
import { parseStoreUrl } from '../../server/stores/store-url.js';
import type { DemoLiveAccess, DemoSummary } from '../demo/run-demo.js';
import { integerOption, type CliIo, type Command } from '../command.js';
import { durationOption, durationOptions, legacyHelp, type DurationOptionSpec } from '../duration-option.js';
import { mysqlPasswordFileHelp, mysqlPasswordFileOptions, mysqlUrlOption } from '../mysql-password.js';
import { redisPasswordFileHelp, redisPasswordFileOptions, redisUrlOption } from '../redis-password.js';

const demoTimeout: DurationOptionSpec = { name: 'timeout', fallbackMs: 300_000, minMs: 5_000, maxMs: 86_400_000, legacy: { name: 'timeout-s', unitMs: 1_000 } };

function renderSummary(s: DemoSummary): string {
  const states = Object.entries(s.commands).filter(([k, v]) => !['total', 'not_terminal'].includes(k) && v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    '',
    `agents online        ${s.agents}/${s.agents_requested}`,
    `commands             ${s.commands.total} sent: ${states || 'none terminal'}${s.commands.not_terminal ? `; ${s.commands.not_terminal} NOT terminal` : ''}`,
    `states in order      ${s.commands_in_order}/${s.commands.total} (queued, sent, ack_received, executing, terminal)`,
    `round trip           p50 ${s.roundtrip_ms.p50} ms, p99 ${s.roundtrip_ms.p99} ms, max ${s.roundtrip_ms.max} ms (created -> terminal, ${s.roundtrip_ms.count} commands)`,
    `telemetry stored     ${s.telemetry_stored} samples`,
    s.rollout === null ? 'update rollout       skipped (MySQL keeps an earlier run\'s TUF root)'
      : `update rollout       ${s.rollout.status}: ${s.rollout.succeeded}/${s.rollout.devices} updated, ${s.rollout.failed} failed${s.rollout.not_finished ? `, ${s.rollout.not_finished} not finished` : ''}`,
    `audit chain          ${s.audit_verified ? 'verified' : 'BROKEN'} (${s.audit_entries} entries)`,
    `stores               SQL ${s.stores.sql}, bus and key/value ${s.stores.bus_kv}`,
    `duration             ${(s.duration_ms / 1000).toFixed(1)} s`,
    `result               ${s.ok ? 'ok' : 'FAILED'}`,
    '',
  ].join('\n');
}

/**
 * `--viewer`: the summary, then the console's URL (the API's own port: it also presents an ECDSA
 * certificate from the serving CA, since browsers take no Ed25519 in TLS), the serving CA to trust,
 * and the demo's login, until SIGINT or SIGTERM.
 */
async function serveConsoleUntilStopped(live: DemoLiveAccess, json: boolean, io: CliIo): Promise<void> {
  io.stdout(json ? `${JSON.stringify(live.summary)}\n` : renderSummary(live.summary));
  const { X509Certificate } = await import('node:crypto');
  const lines = [
    `console              ${live.apiUrl}/`,
    `login                ${live.name} / ${live.password}`,
    `serving CA           ${live.servingCaPath}`,
    `serving CA sha256    ${new X509Certificate(live.servingCaPem).fingerprint256}`,
    'trust it once (this demo\'s own CA, for browsers only), then open the console:',
    `  Chromium/Chrome on Linux: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n sdc-serving-ca -i ${live.servingCaPath}`,
    '  Firefox: Settings, Certificates, View Certificates, Authorities, Import (trust for websites)',
    `  macOS: security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db ${live.servingCaPath}`,
    '  the data directory (and this CA) goes when the demo stops unless --dir keeps it; remove the CA from the browser then',
    'the demo keeps running; Ctrl-C stops it',
    '',
  ];
  // With --json stdout stays one JSON object; the console's access goes to stderr.
  (json ? io.stderr : io.stdout)(lines.join('\n'));
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

function kernelChoice(value: unknown): KernelChoice {
  if (value === undefined) return 'mock';
  if (value === 'mock' || value === 'native' || value === 'auto') return value;
  throw new SdcError('CLI_USAGE', '--kernel must be mock, native or auto');
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run the whole system in one process: CA, control plane, gateway, N paired agents, every opcode, audit check',
  usage: '[--agents N] [--json] [--dir D] [--redis URL] [--mysql URL] [--viewer]',
  optionHelp: [
    ['--agents N', 'Agents to pair and run (default 25, at most 500)'],
    ['--json', 'Print the summary as one JSON object on stdout'],
    ['--dir D', 'Keep the data directory in D (default: a temporary directory, removed afterwards)'],
    ['--redis URL', 'Use Redis for the bus and key/value store (default: embedded)'],
    ['--mysql URL', 'Use MySQL/MariaDB for SQL (default: embedded sql.js)'],
    redisPasswordFileHelp,
    mysqlPasswordFileHelp,
    ['--kernel K', 'Agents\' kernel backend: mock (default; a simulated desktop whose screen lock answers locked), native (the C library; npm run kernel:build) or auto (native; refuses to start when it is not built)'],
    ['--telemetry-interval-ms N', 'Telemetry period per agent (default 2000)'],
    ['--timeout D', 'Give up after D, like 5m (default 5m)'],
    ['--verbose', 'Log the services to stderr'],
    ['--viewer', 'After the summary, keep everything running and print the operator console\'s URL and a login; Ctrl-C stops'],
    ...legacyHelp(demoTimeout),
  ],
  options: {
    agents: { type: 'string' }, json: { type: 'boolean' }, dir: { type: 'string' }, redis: { type: 'string' }, mysql: { type: 'string' },
    ...redisPasswordFileOptions, ...mysqlPasswordFileOptions,
    kernel: { type: 'string' }, 'telemetry-interval-ms': { type: 'string' }, ...durationOptions(demoTimeout), verbose: { type: 'boolean' }, viewer: { type: 'boolean' },
  },
  async run(args, io) {
    const timeoutMs = durationOption(args, demoTimeout, io.stderr);
    // Store URLs (with a password from a file or the environment) are checked before the demo creates a CA and starts anything.
    const redisUrl = await redisUrlOption(args, io);
    const mysqlUrl = await mysqlUrlOption(args, io);
    if (redisUrl !== undefined) parseStoreUrl('redis', redisUrl);
    if (mysqlUrl !== undefined) parseStoreUrl('mysql', mysqlUrl);
    const json = args.values.json === true;
    const interactive = process.stderr.isTTY === true;
    let lastLength = 0;
    const progress = (line: string, final = false) => {
      if (interactive) {
        io.stderr(`\r${line.padEnd(lastLength)}${final ? '\n' : ''}`);
        lastLength = final ? 0 : line.length;
      } else if (final || !/^(commands|paired|\d+\/)/.test(line)) {
        io.stderr(`${line}\n`);
      }
    };
    // Loaded here, not at the top: the demo pulls in the whole server, most of the CLI's start-up time.
    const [{ runDemo }, { default: pino }] = await Promise.all([import('../demo/run-demo.js'), import('pino')]);
    const summary = await runDemo({
      agents: integerOption(args, 'agents', 25, 1, 500),
      telemetryIntervalMs: integerOption(args, 'telemetry-interval-ms', 2000, 100, 3_600_000),
      timeoutMs,
      ...(typeof args.values.dir === 'string' ? { dataDir: args.values.dir } : {}),
      kernel: kernelChoice(args.values.kernel),
      ...(redisUrl === undefined ? {} : { redisUrl }),
      ...(mysqlUrl === undefined ? {} : { mysqlUrl }),
      progress,
      ...(args.values.verbose === true ? { logger: pino({ level: 'info' }, pino.destination(2)) } : {}),
      ...(args.values.viewer === true ? { keepRunning: (live: DemoLiveAccess) => serveConsoleUntilStopped(live, json, io) } : {}),
    });
    if (args.values.viewer !== true) io.stdout(json ? `${JSON.stringify(summary)}\n` : renderSummary(summary));
    return summary.ok ? 0 : 1;
  },
};
