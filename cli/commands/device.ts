import { integerOption, type Command, type CommandGroup } from '../command.js';
import { apiClient, getAllPages, onePositional, segment } from '../api-client.js';

interface DeviceView { id: string; status?: string; online?: boolean; gateway_id?: string | null; last_seen_at_ms?: number | null; [key: string]: unknown }


const list: Command = {
  name: 'list',
  summary: 'Devices known to the control plane (GET /v1/devices), every page',
  usage: '[--limit N] [--json]',
  optionHelp: [['--limit N', 'Devices at most (default 1000)'], ['--json', 'Print { items: [...] } as JSON']],
  options: { limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const limit = integerOption(args, 'limit', 1_000, 1, 50_000);
    const items = await getAllPages<DeviceView>(await apiClient(io), '/v1/devices', limit);
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('id\tstatus\tonline\tgateway\n');
    for (const d of items) io.stdout(`${d.id}\t${d.status ?? ''}\t${d.online === true ? 'yes' : 'no'}\t${d.gateway_id ?? ''}\n`);
    return 0;
  },
};

const show: Command = {
  name: 'show',
  summary: 'One device (GET /v1/devices/ID)',
  usage: 'ID [--json]',
  optionHelp: [['--json', 'Print the device as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'device id');
    const device = await (await apiClient(io)).get<DeviceView>(`/v1/devices/${segment(id)}`);
    io.stdout(args.values.json === true ? JSON.stringify(device) + '\n' : Object.entries(device).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n') + '\n');
    return 0;
  },
};

export const deviceCommands: CommandGroup = { name: 'device', summary: 'Devices, through a running control plane (sdc login first)', commands: [list, show] };
