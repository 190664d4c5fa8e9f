import { type Command, type CommandGroup } from '../command.js';
import { apiClient, onePositional, segment } from '../api-client.js';
import { SdcError } from '../../core/errors/index.js';
import { shownText, shownValue } from '../shown-text.js';

/** Compliance (docs/compliance.md) through a running control plane: one device, and the fleet. */

interface Reason { code: string; severity: string; message: string }
interface DeviceCompliance { device_id: string; state: string; reasons: Reason[]; facts: Record<string, unknown>; evaluated_at_ms: number | null }
interface Summary { counts: Record<string, number>; state: string; items: Array<{ device_id: string; reasons: Reason[] }>; next_cursor: string | null }

const states = ['compliant', 'warning', 'non_compliant'] as const;

const show: Command = {
  name: 'show',
  summary: "One device's compliance, judged now, with its reasons and facts (GET /v1/devices/ID/compliance)",
  usage: 'ID [--json]',
  optionHelp: [['--json', 'Print the answer as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'device id');
    const answer = await (await apiClient(io)).get<DeviceCompliance>(`/v1/devices/${segment(id)}/compliance`);
    if (args.values.json === true) {
      io.stdout(JSON.stringify(answer) + '\n');
      return 0;
    }
    io.stdout(`${shownValue(answer.device_id)}\t${shownValue(answer.state)}\n`);
    for (const reason of answer.reasons) io.stdout(`  ${shownValue(reason.severity)}\t${shownValue(reason.code)}\t${shownValue(reason.message)}\n`);
    // A fact is what the device reported (an agent version, a kernel backend): its characters are the device's.
    for (const [name, value] of Object.entries(answer.facts)) io.stdout(`  fact\t${shownText(name)}\t${shownValue(String(value))}\n`);
    return 0;
  },
};

const summary: Command = {
  name: 'summary',
  summary: 'The fleet: devices per state, and the first page of one state\'s devices with reasons (GET /v1/compliance)',
  usage: '[--state compliant|warning|non_compliant] [--json]',
  optionHelp: [['--state S', 'Which devices to list (default non_compliant)'], ['--json', 'Print the answer as JSON']],
  options: { state: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const state = typeof args.values.state === 'string' ? args.values.state : 'non_compliant';
    if (!(states as readonly string[]).includes(state)) throw new SdcError('CLI_USAGE', `--state must be one of ${states.join(', ')}`);
    const answer = await (await apiClient(io)).get<Summary>(`/v1/compliance?state=${state}&limit=500`);
    if (args.values.json === true) {
      io.stdout(JSON.stringify(answer) + '\n');
      return 0;
    }
    io.stdout(Object.entries(answer.counts).map(([name, count]) => `${shownText(name)}\t${shownValue(count)}`).join('\n') + '\n');
    for (const item of answer.items) io.stdout(`${shownValue(item.device_id)}\t${shownValue(answer.state)}\t${item.reasons.map((reason) => shownValue(reason.code)).join(',')}\n`);
    return 0;
  },
};

export const complianceCommands: CommandGroup = { name: 'compliance', summary: 'Device compliance (sdc login first)', commands: [show, summary] };
