import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SdcError } from '../core/errors/index.js';
import { readFileBounded } from './bounded-read.js';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** What a command may touch: its streams, and a way to read stdin. Tests pass fakes. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /**
   * All of stdin as UTF-8; with `bytesMax`, at most `bytesMax + 1` bytes (the rest is not read), so
   * the caller can refuse an input that is too long without reading it whole (cli/bounded-read.ts).
   */
  readStdin: (options?: { readonly bytesMax?: number }) => Promise<string>;
  env: Readonly<Record<string, string | undefined>>;
  /** Whether stderr is a terminal: progress draws a bar there, and prints periodic lines otherwise. */
  stderrIsTty?: boolean;
  /** Asks for a secret without echo (a terminal on stdin); absent when there is no terminal to ask. */
  promptSecret?: (question: string) => Promise<string>;
  /** Resolves with a reason when a long-running command (serve, gateway) should stop; default: SIGINT or SIGTERM. */
  untilStopped?: () => Promise<string>;
}

export interface ParsedCommandArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** A leaf command: `sdc <group> <name>` or `sdc <name>`. */
export interface Command {
  name: string;
  summary: string;
  /** Usage line after `sdc <path>`, e.g. `--dir D --csr FILE --out FILE`. */
  usage: string;
  /** Option help lines, in display order: [flag, description]. */
  optionHelp?: ReadonlyArray<readonly [string, string]>;
  options?: OptionsConfig;
  allowPositionals?: boolean;
  /** Exit status for a usage mistake, where a protocol fixes it (sdc tuf-client: the TUF conformance suite allows only 0 and 1); default 2. */
  usageExitCode?: number;
  run: (args: ParsedCommandArgs, io: CliIo) => Promise<number>;
}

/** A group of subcommands: `sdc pki init|issue|revoke|crl`. */
export interface CommandGroup {
  name: string;
  summary: string;
  commands: readonly Command[];
}

export type CommandEntry = Command | CommandGroup;

export function isGroup(entry: CommandEntry): entry is CommandGroup {
  return 'commands' in entry;
}

export function renderCommandHelp(path: string, command: Command): string {
  const lines = [`Usage: sdc ${path} ${command.usage}`.trimEnd(), '', command.summary, ''];
  const optionHelp = [...(command.optionHelp ?? []), ['-h, --help', 'Show this help'] as const];
  lines.push('Options:');
  const width = Math.max(...optionHelp.map(([flag]) => flag.length));
  for (const [flag, text] of optionHelp) lines.push(`  ${flag.padEnd(width)}  ${text}`);
  return lines.join('\n') + '\n';
}

export function renderGroupHelp(path: string, entries: readonly CommandEntry[], summary: string): string {
  const lines = [`Usage: sdc ${path ? path + ' ' : ''}<command> [options]`, '', summary, '', 'Commands:'];
  const width = Math.max(...entries.map((e) => e.name.length));
  for (const e of entries) lines.push(`  ${e.name.padEnd(width)}  ${e.summary}`);
  lines.push('', `Run 'sdc ${path ? path + ' ' : ''}<command> --help' for a command's options.`);
  return lines.join('\n') + '\n';
}

/**
 * `--agents -5` as `--agents=-5`: node's parseArgs takes a value that starts with a dash for an
 * option of its own and answers with a three-line "ambiguous" message. A value that looks like a
 * negative number is joined to its string option, so the option's own check refuses it in one line.
 */
function joinNegativeNumbers(command: Command, argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && command.options?.[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Parses a command's arguments strictly; a user mistake becomes one CLI_USAGE line, not a stack trace. */
export function parseCommandArgs(command: Command, argv: string[]): ParsedCommandArgs {
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeNumbers(command, argv),
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: command.allowPositionals ?? false,
      strict: true,
    });
    return { values: values as ParsedCommandArgs['values'], positionals };
  } catch (error) {
    // Some of node's messages run over several lines; the first says what is wrong.
    throw new SdcError('CLI_USAGE', (error as Error).message.split('\n')[0]!);
  }
}

/** Reads a required string option or throws CLI_USAGE naming it. */
export function requireOption(args: ParsedCommandArgs, name: string): string {
  const value = args.values[name];
  if (typeof value !== 'string' || value.length === 0) throw new SdcError('CLI_USAGE', `missing required option --${name}`);
  return value;
}

export function stringOption(args: ParsedCommandArgs, name: string, fallback: string): string {
  const value = args.values[name];
  return typeof value === 'string' ? value : fallback;
}

/** Parses a positive integer option within [min, max]; refuses anything else with CLI_USAGE. */
export function integerOption(args: ParsedCommandArgs, name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const raw = args.values[name];
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new SdcError('CLI_USAGE', `--${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** Environment variable that may carry an operator password (never put passwords in argv). */
export const passwordEnv = 'SDC_PASSWORD';
/** Environment variable naming a file whose first line is the password: a container's secret file (compose.yaml's fleet). */
export const passwordFileEnv = 'SDC_PASSWORD_FILE';
/** A password file is one short line; anything longer is not one. */
const passwordFileBytesMax = 4096;

/** The password from the first line of stdin (`--password-stdin`), SDC_PASSWORD, or the first line of the file $SDC_PASSWORD_FILE. */
export async function readPasswordOption(args: ParsedCommandArgs, io: CliIo): Promise<string> {
  if (args.values['password-stdin'] === true) {
    // At most passwordFileBytesMax + 1 bytes are read, so a pipe that never ends or a huge input
    // is refused rather than read whole; a first line within the bound is all that is used.
    const text = await io.readStdin({ bytesMax: passwordFileBytesMax });
    const lineEnd = text.search(/\r?\n/);
    if (lineEnd === -1 && text.length > passwordFileBytesMax) throw new SdcError('CLI_INPUT', `the password on stdin is over ${passwordFileBytesMax} bytes`);
    const line = lineEnd === -1 ? text : text.slice(0, lineEnd);
    if (line.length === 0) throw new SdcError('CLI_INPUT', 'no password on stdin');
    return line;
  }
  const fromEnv = io.env[passwordEnv];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  const file = io.env[passwordFileEnv];
  if (file !== undefined && file.length > 0) return readPasswordFile(file);
  throw new SdcError('CLI_USAGE', `give the password with --password-stdin, the ${passwordEnv} environment variable or a file named by ${passwordFileEnv}`);
}

async function readPasswordFile(path: string): Promise<string> {
  // Bounded: a file of more than passwordFileBytesMax bytes (or a device, or a pipe that never
  // ends) is refused after that many bytes, never read whole.
  const text = await readFileBounded(path, passwordFileBytesMax, passwordFileEnv);
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new SdcError('CLI_INPUT', `${passwordFileEnv} ${path} has no password on its first line`);
  return line;
}
