import { SdcError } from '../../core/errors/index.js';
import { commandTerminalStates, type CommandState } from '../../core/protocol/command-machine.js';
import { opcodeNames as opcodes } from '../../core/protocol/messages/opcode-names.js';
import { requireOption, type CliIo, type Command, type CommandGroup } from '../command.js';
import { apiClient, onePositional, segment, type ApiClient } from '../api-client.js';
import { durationOption, durationOptions, type DurationOptionSpec } from '../duration-option.js';
import { approveCommand, cancelCommand, rejectCommand } from './approvals.js';
import { shownValue } from '../shown-text.js';

interface CommandView { id: string; device_id: string; opcode: string; state: CommandState; history?: Array<{ state: string; at_ms: number }>; [key: string]: unknown }

const watchTimeout: DurationOptionSpec = { name: 'timeout', fallbackMs: 600_000, minMs: 1_000, maxMs: 86_400_000 };
const ttl: DurationOptionSpec = { name: 'ttl', fallbackMs: 0, minMs: 0, maxMs: 86_400_000 };

function isTerminal(state: string): boolean {
  return (commandTerminalStates as readonly string[]).includes(state);
}

function argsOption(raw: unknown): Record<string, unknown> {
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(raw));
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SdcError('CLI_USAGE', `--args must be a JSON object, like '{"limit":5}'`);
  return parsed as Record<string, unknown>;
}

function printCommand(io: CliIo, json: boolean, command: CommandView): void {
  if (json) {
    io.stdout(JSON.stringify(command) + '\n');
    return;
  }
  io.stdout(`${shownValue(command.id)} ${shownValue(command.opcode)} on ${shownValue(command.device_id)}: ${shownValue(command.state)}\n`);
  for (const step of command.history ?? []) io.stdout(`  ${new Date(step.at_ms).toISOString()} ${shownValue(step.state)}\n`);
}

const send: Command = {
  name: 'send',
  summary: 'Send a command to a device (POST /v1/commands, always with an Idempotency-Key)',
  usage: '--device ID --opcode OP [--args JSON] [--ttl 5m] [--reason TEXT] [--idempotency-key K] [--json]',
  optionHelp: [
    ['--device ID', 'The device'],
    ['--opcode OP', `One of ${opcodes.join(', ')}`],
    ['--args JSON', "The opcode's arguments as a JSON object (default {})"],
    ['--ttl D', "How long the command may wait for the device, like 5m (default: the server's)"],
    ['--reason TEXT', 'Why it is sent; policy rules with reasonRequired demand it, and it is recorded in the audit'],
    ['--idempotency-key K', 'Repeat a send safely: the same key answers with the same command (default: a fresh UUID)'],
    ['--json', 'Print the created command as JSON'],
  ],
  options: { device: { type: 'string' }, opcode: { type: 'string' }, args: { type: 'string' }, ...durationOptions(ttl), reason: { type: 'string' }, 'idempotency-key': { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const device = requireOption(args, 'device');
    const opcode = requireOption(args, 'opcode');
    // Refused here with the list, before a round trip (the server refuses it too: PROTO_UNKNOWN_OPCODE).
    if (!(opcodes as readonly string[]).includes(opcode)) throw new SdcError('CLI_USAGE', `unknown opcode ${opcode}; known opcodes: ${opcodes.join(', ')}`);
    const ttlMs = durationOption(args, ttl);
    const reason = typeof args.values.reason === 'string' ? args.values.reason : undefined;
    const body = { device_id: device, opcode, args: argsOption(args.values.args), ...(ttlMs > 0 ? { ttl_ms: ttlMs } : {}), ...(reason === undefined ? {} : { reason }) };
    const key = typeof args.values['idempotency-key'] === 'string' ? args.values['idempotency-key'] : undefined;
    const command = await (await apiClient(io)).post<CommandView>('/v1/commands', body, key);
    io.stdout(args.values.json === true ? JSON.stringify(command) + '\n' : `${shownValue(command.id)} ${shownValue(command.state)}\n`);
    return 0;
  },
};

const show: Command = {
  name: 'show',
  summary: 'One command with its state history (GET /v1/commands/ID)',
  usage: 'ID [--json]',
  optionHelp: [['--json', 'Print the command as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'command id');
    printCommand(io, args.values.json === true, await (await apiClient(io)).get<CommandView>(`/v1/commands/${segment(id)}`));
    return 0;
  },
};

/** Follows the live stream until the command is terminal; the stream is opened before the first read, so no state is missed. */
async function followUntilTerminal(api: ApiClient, io: CliIo, id: string, json: boolean, timeoutMs: number): Promise<CommandView | undefined> {
  return new Promise((resolve, reject) => {
    let done = false;
    let stream: { close(): void } | undefined;
    const finish = (value: CommandView | undefined, error?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream?.close();
      if (error) reject(error);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const reread = () => api.get<CommandView>(`/v1/commands/${segment(id)}`).then((c) => { if (isTerminal(c.state)) finish(c); }, (error: Error) => finish(undefined, error));
    api.live(({ event, data }) => {
      // The server lost changes (a store outage): the terminal state may have been one of them.
      if (event === 'resync') void reread();
      if (event !== 'command') return;
      const message = JSON.parse(data) as { command_id?: string; state?: string; at_ms?: number };
      if (message.command_id !== id || typeof message.state !== 'string') return;
      io.stdout(json ? JSON.stringify({ event: 'command', ...message }) + '\n' : `${new Date(message.at_ms ?? Date.now()).toISOString()} ${shownValue(message.state)}\n`);
      if (isTerminal(message.state)) void reread();
    }, (error) => { if (!done) void reread().then(() => finish(undefined, error ?? new SdcError('HTTP_UNREACHABLE', 'the live stream ended'))); })
      .then((opened) => {
        stream = opened;
        if (done) opened.close();
        else void reread();
      }, (error: Error) => finish(undefined, error));
  });
}

const watch: Command = {
  name: 'watch',
  summary: 'Follow a command on the live stream (/v1/live) until it reaches a terminal state',
  usage: 'ID [--timeout 10m] [--json]',
  optionHelp: [
    ['--timeout D', 'Give up after D, like 10m (default 10m); exit 1'],
    ['--json', 'One JSON object per line: each live event, then the final command'],
  ],
  options: { ...durationOptions(watchTimeout), json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'command id');
    const timeoutMs = durationOption(args, watchTimeout);
    const json = args.values.json === true;
    const final = await followUntilTerminal(await apiClient(io), io, id, json, timeoutMs);
    if (final === undefined) {
      io.stderr(`sdc: command ${id} not terminal after ${timeoutMs} ms\n`);
      return 1;
    }
    printCommand(io, json, final);
    return final.state === 'succeeded' ? 0 : 1;
  },
};

export const commandCommands: CommandGroup = { name: 'command', summary: 'Commands, through a running control plane (sdc login first)', commands: [send, show, watch, approveCommand, rejectCommand, cancelCommand] };
