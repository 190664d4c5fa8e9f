import { integerOption, type Command, type CommandGroup } from '../command.js';
import { apiClient, onePositional, segment, type ApiClient } from '../api-client.js';
import { SdcError } from '../../core/errors/index.js';
import { quotedText, shownText, shownValue } from '../shown-text.js';

/** Alerts (docs/api.md, "Alert rules") through a running control plane: list them, acknowledge one. */

interface Alert {
  id: string; device_id: string | null; kind: string; severity: string; state: 'open' | 'acknowledged'; message: string;
  created_at_ms: number; acknowledged_by: string | null; ack_note: string | null; cleared_at_ms: number | null; [key: string]: unknown;
}

const states = ['open', 'acked'] as const;
/** Pages one listing may follow (500 alerts each). */
const listPagesMax = 100;
/** The API keeps at most this much of a note (alerts.ts ackNoteCharsMax); a longer one is refused here rather than cut. */
const noteCharsMax = 1024;

async function listAll(api: ApiClient, filter: { state?: string; deviceId?: string }, limit: number): Promise<Alert[]> {
  const items: Alert[] = [];
  let cursor: string | null | undefined;
  for (let page = 0; page < listPagesMax && items.length < limit; page++) {
    const query = new URLSearchParams({ limit: String(Math.min(500, limit - items.length)) });
    if (filter.state !== undefined) query.set('state', filter.state);
    if (filter.deviceId !== undefined) query.set('device_id', filter.deviceId);
    if (cursor) query.set('cursor', cursor);
    const answer = await api.get<{ items: Alert[]; next_cursor: string | null }>(`/v1/alerts?${query.toString()}`);
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}

const list: Command = {
  name: 'list',
  summary: 'Alerts, newest first (GET /v1/alerts): open, acknowledged, or both',
  usage: '[--state open|acked] [--device ID] [--limit N] [--json]',
  optionHelp: [
    ['--state S', 'open or acked (default both)'], ['--device ID', 'Only this device\'s alerts'],
    ['--limit N', 'Alerts at most (default 1000)'], ['--json', 'Print { items: [...] } as JSON'],
  ],
  options: { state: { type: 'string' }, device: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const state = typeof args.values.state === 'string' ? args.values.state : undefined;
    if (state !== undefined && !(states as readonly string[]).includes(state)) throw new SdcError('CLI_USAGE', `--state must be one of ${states.join(', ')}`);
    const deviceId = typeof args.values.device === 'string' ? args.values.device : undefined;
    const limit = integerOption(args, 'limit', 1_000, 1, 50_000);
    const items = await listAll(await apiClient(io), { ...(state === undefined ? {} : { state }), ...(deviceId === undefined ? {} : { deviceId }) }, limit);
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('alert\tstate\tseverity\tkind\tdevice\traised_at\tcleared\tmessage\n');
    for (const a of items) {
      const cleared = a.cleared_at_ms === null ? '' : new Date(a.cleared_at_ms).toISOString();
      io.stdout(`${shownText(a.id)}\t${a.state === 'acknowledged' ? 'acked' : 'open'}\t${shownText(a.severity)}\t${shownText(a.kind)}\t${shownValue(a.device_id)}\t${new Date(a.created_at_ms).toISOString()}\t${cleared}\t${quotedText(a.message)}\n`);
    }
    return 0;
  },
};

const ack: Command = {
  name: 'ack',
  summary: 'Acknowledge an open alert with a note (POST /v1/alerts/ID/ack); audited, and sent live',
  usage: 'ID [--note TEXT] [--json]',
  optionHelp: [['--note TEXT', 'Why, or what was done (kept with the alert and in the audit log)'], ['--json', 'Print the alert as JSON']],
  options: { note: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'alert id');
    const note = typeof args.values.note === 'string' ? args.values.note : undefined;
    if (note !== undefined && note.length > noteCharsMax) throw new SdcError('CLI_USAGE', `--note must be at most ${noteCharsMax} characters`);
    const answer = await (await apiClient(io)).post<Alert>(`/v1/alerts/${segment(id)}/ack`, note === undefined ? {} : { note });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${shownText(answer.id)}\tacked\tby ${shownValue(answer.acknowledged_by)}\t${answer.ack_note === null ? '' : quotedText(answer.ack_note)}\n`);
    return 0;
  },
};

export const alertCommands: CommandGroup = { name: 'alert', summary: 'Alerts: list, acknowledge (sdc login first; ack needs the operator role)', commands: [list, ack] };
