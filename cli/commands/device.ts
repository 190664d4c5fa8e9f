import { SdcError } from '../../core/errors/index.js';
import { deviceTagLimits, deviceTagPattern, isDeviceTag } from '../../core/protocol/device-tags.js';
import { integerOption, type Command, type CommandGroup } from '../command.js';
import { apiClient, getAllPages, onePositional, segment } from '../api-client.js';
import { escapedJsonText, shownText, shownValue } from '../shown-text.js';

interface DeviceView { id: string; status?: string; online?: boolean; gateway_id?: string | null; last_seen_at_ms?: number | null; tags?: string[]; [key: string]: unknown }

/** `--set a,b` as a tag list: checked here first, so a typo is one CLI_USAGE line without a round trip (the server checks again). */
function tagList(text: string): string[] {
  const tags = text === '' ? [] : text.split(',').map((tag) => tag.trim());
  const bad = tags.find((tag) => !isDeviceTag(tag));
  if (bad !== undefined) throw new SdcError('CLI_USAGE', `--set: tag ${JSON.stringify(bad)} does not match ${deviceTagPattern}`);
  if (new Set(tags).size > deviceTagLimits.tagsPerDeviceMax) throw new SdcError('CLI_USAGE', `--set: at most ${deviceTagLimits.tagsPerDeviceMax} tags`);
  return [...new Set(tags)];
}


const list: Command = {
  name: 'list',
  summary: 'Devices known to the control plane (GET /v1/devices), every page',
  usage: '[--tag T] [--limit N] [--json]',
  optionHelp: [['--tag T', 'Only devices with this tag (group:NAME for a group)'], ['--limit N', 'Devices at most (default 1000)'], ['--json', 'Print { items: [...] } as JSON']],
  options: { tag: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const limit = integerOption(args, 'limit', 1_000, 1, 50_000);
    const tag = args.values.tag === undefined ? undefined : String(args.values.tag);
    if (tag !== undefined && !isDeviceTag(tag)) throw new SdcError('CLI_USAGE', `--tag: ${JSON.stringify(tag)} does not match ${deviceTagPattern}`);
    const items = await getAllPages<DeviceView>(await apiClient(io), tag === undefined ? '/v1/devices' : `/v1/devices?tag=${encodeURIComponent(tag)}`, limit);
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('id\tstatus\tonline\tgateway\ttags\n');
    for (const d of items) io.stdout(`${shownValue(d.id)}\t${shownValue(d.status)}\t${d.online === true ? 'yes' : 'no'}\t${shownValue(d.gateway_id)}\t${(d.tags ?? []).map(shownValue).join(',')}\n`);
    return 0;
  },
};

const tag: Command = {
  name: 'tag',
  summary: 'Replace a device\'s tags (PUT /v1/devices/ID/tags; operator); group:NAME tags are its groups',
  usage: 'ID --set a,b[,group:NAME] [--json]',
  optionHelp: [['--set LIST', 'The whole new set of tags, comma-separated (--set "" removes them all)'], ['--json', 'Print the answer as JSON']],
  options: { set: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'device id');
    if (typeof args.values.set !== 'string') throw new SdcError('CLI_USAGE', 'give the new tags with --set a,b (--set "" removes them all)');
    const answer = await (await apiClient(io)).put<{ device_id: string; tags: string[] }>(`/v1/devices/${segment(id)}/tags`, { tags: tagList(args.values.set) });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${shownValue(answer.device_id)}: ${answer.tags.length === 0 ? '(no tags)' : answer.tags.map(shownValue).join(',')}\n`);
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
    io.stdout(args.values.json === true ? JSON.stringify(device) + '\n' : Object.entries(device).map(([k, v]) => `${shownText(k)}: ${typeof v === 'object' ? escapedJsonText(JSON.stringify(v)) : shownValue(String(v))}`).join('\n') + '\n');
    return 0;
  },
};

export const deviceCommands: CommandGroup = { name: 'device', summary: 'Devices, through a running control plane (sdc login first)', commands: [list, show, tag] };
