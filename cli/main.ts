import { readFile } from 'node:fs/promises';
import { SdcError } from '../core/errors/index.js';
import { readStreamBounded } from './bounded-read.js';
import {
  isGroup, parseCommandArgs, renderCommandHelp, renderGroupHelp,
  type CliIo, type Command, type CommandEntry,
} from './command.js';
import { envelopeGroup } from './commands/envelope.js';
import { benchGroup } from './commands/bench.js';
import { pkiCommands } from './commands/pki.js';
import { userCommands } from './commands/user.js';
import { auditCommands } from './commands/audit.js';
import { agentCommand } from './commands/agent.js';
import { simCommand } from './commands/sim.js';
import { demoCommand } from './commands/demo.js';
import { gatewayCommand, serveCommand } from './commands/serve.js';
import { chaosGroup } from './commands/chaos.js';
import { loginCommand, logoutCommand } from './commands/login.js';
import { deviceCommands } from './commands/device.js';
import { commandCommands } from './commands/commands.js';
import { policyCommands } from './commands/policy.js';
import { dlqCommands } from './commands/dlq.js';
import { complianceCommands } from './commands/compliance.js';
import { alertCommands } from './commands/alert.js';
import { approvalsCommands } from './commands/approvals.js';
import { tufClientCommand } from './commands/tuf-client.js';
import { releaseCommands } from './commands/release.js';
import { rolloutCommands } from './commands/rollout.js';
import { artifactCommands } from './commands/artifact.js';
import { otaCommands } from './commands/ota.js';
import { reportCommand } from './commands/report.js';
import { ttyPromptSecret } from './password-input.js';
import { escapedUnshown } from './shown-text.js';

// Every command module registers here, one line each.
const entries: CommandEntry[] = [
  demoCommand,
  serveCommand,
  gatewayCommand,
  envelopeGroup,
  benchGroup,
  pkiCommands,
  userCommands,
  auditCommands,
  agentCommand,
  simCommand,
  chaosGroup,
  loginCommand,
  logoutCommand,
  deviceCommands,
  commandCommands,
  policyCommands,
  dlqCommands,
  complianceCommands,
  alertCommands,
  approvalsCommands,
  tufClientCommand,
  releaseCommands,
  rolloutCommands,
  artifactCommands,
  otaCommands,
  reportCommand,
];

const topSummary = 'Secure Device Control: control plane, gateway, agent, simulator and tools.';

export function defaultIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: (options) => readStreamBounded(process.stdin, options?.bytesMax),
    env: process.env,
    stderrIsTty: process.stderr.isTTY === true,
    ...(process.stdin.isTTY === true ? { promptSecret: ttyPromptSecret } : {}),
  };
}

/** Runs `sdc` with argv (without node and script); returns the exit code. Never throws. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    if (error instanceof SdcError) {
      // User-facing refusals are one line: the code and the message, no stack.
      // A refusal about a file names it (a key ring file, a key file), even where the message does not.
      const path = error.details['path'];
      const where = typeof path === 'string' && !error.message.includes(path) ? ` (${path})` : '';
      // A refusal may carry the server's words (HTTP_REFUSED: its error message, which can quote a
      // device's or another operator's text): no control, bidi or zero-width character reaches the terminal.
      io.stderr(`sdc: ${error.code}: ${escapedUnshown(error.message)}${escapedUnshown(where)}\n`);
      return error.code === 'CLI_USAGE' ? 2 : 1;
    }
    io.stderr(`sdc: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
    return 70;
  }
}

/** The version in package.json, read when asked for: the CLI runs from the checkout (bin/sdc.js). */
async function packageVersion(): Promise<string> {
  const text = await readFile(new URL('../package.json', import.meta.url), 'utf8');
  return String((JSON.parse(text) as { version?: unknown }).version);
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-V' || first === 'version') {
    io.stdout(`sdc ${await packageVersion()}\n`);
    return 0;
  }
  // `sdc help sim` and `sdc help pki issue` are `sdc sim --help` and `sdc pki issue --help`.
  if (first === 'help' && rest.length > 0) return dispatch([...rest, '--help'], io);
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.stdout(`${renderGroupHelp('', entries, topSummary)}Run 'sdc --version' for the version.\n`);
    return first === undefined ? 2 : 0;
  }
  const entry = entries.find((e) => e.name === first);
  if (!entry) throw new SdcError('CLI_USAGE', `unknown command '${first}' (see 'sdc --help')`);
  if (!isGroup(entry)) return runCommand(entry.name, entry, rest, io);
  const [sub, ...subRest] = rest;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout(renderGroupHelp(entry.name, entry.commands, entry.summary));
    return sub === undefined ? 2 : 0;
  }
  const command = entry.commands.find((c) => c.name === sub);
  if (!command) throw new SdcError('CLI_USAGE', `unknown command '${entry.name} ${sub}' (see 'sdc ${entry.name} --help')`);
  return runCommand(`${entry.name} ${command.name}`, command, subRest, io);
}

async function runCommand(path: string, command: Command, argv: string[], io: CliIo): Promise<number> {
  let args: ReturnType<typeof parseCommandArgs>;
  try {
    args = parseCommandArgs(command, argv);
  } catch (error) {
    if (command.usageExitCode === undefined || !SdcError.is(error, 'CLI_USAGE')) throw error;
    io.stderr(`sdc: ${error.code}: ${error.message}\n`);
    return command.usageExitCode;
  }
  if (args.values.help === true) {
    io.stdout(renderCommandHelp(path, command));
    return 0;
  }
  return command.run(args, io);
}
