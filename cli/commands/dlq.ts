import { integerOption, requireOption, type Command, type CommandGroup } from '../command.js';
import { apiClient, onePositional, segment, type ApiClient } from '../api-client.js';
import { SdcError } from '../../core/errors/index.js';
import { shownValue } from '../shown-text.js';

/** Dead-letter remediation (docs/api.md, "Dead letters"): list, retry, discard, through a running control plane. */

interface DeadLetter {
  command_id: string; device_id: string; opcode: string; device_seq: number; dead_lettered_at_ms: number; expires_at_ms: number;
  reason: string | null; retries: number; [key: string]: unknown;
}
interface RetryResult { command_id: string; outcome: 'retried' | 'refused'; gateway_id?: string; retries?: number; error?: { code: string; message: string } }

/** Pages one listing may follow (500 items each). */
const listPagesMax = 100;

async function listAll(api: ApiClient, deviceId: string | undefined, limit: number): Promise<DeadLetter[]> {
  const items: DeadLetter[] = [];
  let cursor: string | null | undefined;
  for (let page = 0; page < listPagesMax && items.length < limit; page++) {
    const query = new URLSearchParams({ limit: String(Math.min(500, limit - items.length)) });
    if (deviceId !== undefined) query.set('device_id', deviceId);
    if (cursor) query.set('cursor', cursor);
    const answer = await api.get<{ items: DeadLetter[]; next_cursor: string | null }>(`/v1/dead-letters?${query.toString()}`);
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}

const list: Command = {
  name: 'list',
  summary: 'Dead-lettered commands not discarded, newest first (GET /v1/dead-letters), fleet-wide or one device',
  usage: '[--device ID] [--limit N] [--json]',
  optionHelp: [['--device ID', 'Only this device'], ['--limit N', 'Entries at most (default 1000)'], ['--json', 'Print { items: [...] } as JSON']],
  options: { device: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const limit = integerOption(args, 'limit', 1_000, 1, 50_000);
    const device = typeof args.values.device === 'string' ? args.values.device : undefined;
    const items = await listAll(await apiClient(io), device, limit);
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('command\tdevice\topcode\tseq\tretries\tdead_lettered_at\treason\n');
    for (const d of items) {
      io.stdout(`${shownValue(d.command_id)}\t${shownValue(d.device_id)}\t${shownValue(d.opcode)}\t${shownValue(d.device_seq)}\t${shownValue(d.retries)}\t${new Date(d.dead_lettered_at_ms).toISOString()}\t${shownValue(d.reason)}\n`);
    }
    return 0;
  },
};

const retry: Command = {
  name: 'retry',
  summary: 'Retry dead-lettered commands (POST /v1/dead-letters/retry): the same signed command, delivered again',
  usage: 'ID [ID...] [--json]',
  optionHelp: [['--json', 'Print { results: [...] } as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const ids = args.positionals;
    if (ids.length === 0) throw new SdcError('CLI_USAGE', 'name at least one command id');
    const answer = await (await apiClient(io)).post<{ results: RetryResult[] }>('/v1/dead-letters/retry', { ids });
    if (args.values.json === true) io.stdout(JSON.stringify(answer) + '\n');
    else {
      for (const r of answer.results) {
        io.stdout(r.outcome === 'retried' ? `${shownValue(r.command_id)}\tretried\tgateway ${shownValue(r.gateway_id)}\tretry ${shownValue(r.retries)}\n` : `${shownValue(r.command_id)}\trefused\t${shownValue(r.error?.code)}: ${shownValue(r.error?.message)}\n`);
      }
    }
    // Exit 1 when any id was refused, so a script notices.
    return answer.results.every((r) => r.outcome === 'retried') ? 0 : 1;
  },
};

const discard: Command = {
  name: 'discard',
  summary: 'Discard a dead-lettered command with a reason (POST /v1/dead-letters/ID/discard); it is never retried afterwards',
  usage: 'ID --reason TEXT [--json]',
  optionHelp: [['--reason TEXT', 'Why (required; kept in the audit log)'], ['--json', 'Print the answer as JSON']],
  options: { reason: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'command id');
    const reason = requireOption(args, 'reason');
    const answer = await (await apiClient(io)).post<{ command_id: string; discarded_at_ms: number; reason: string }>(`/v1/dead-letters/${segment(id)}/discard`, { reason });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${shownValue(answer.command_id)}\tdiscarded\t${shownValue(answer.reason)}\n`);
    return 0;
  },
};

interface DeadEntry { stream: string; id: string; reason: string | null; kind: string | null; device_id: string | null; delivery_count: number | null; fields: Record<string, string> }

/** Dead bus entries (<stream>:dead; docs/decisions/0007-dead-letters.md): the streams, one stream's entries, replay, discard. */
const streams: Command = {
  name: 'streams',
  summary: 'Streams with their count of dead bus entries (GET /v1/dead-letters/streams)',
  usage: '[--json]',
  optionHelp: [['--json', 'Print { items: [...] } as JSON']],
  options: { json: { type: 'boolean' } },
  async run(args, io) {
    const answer = await (await apiClient(io)).get<{ items: Array<{ stream: string; dead_entries: number }> }>('/v1/dead-letters/streams');
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : answer.items.map((s) => `${shownValue(s.stream)}\t${shownValue(s.dead_entries)}\n`).join(''));
    return 0;
  },
};

const entries: Command = {
  name: 'entries',
  summary: 'One stream\'s dead bus entries, oldest first, with why (GET /v1/dead-letters/streams/entries)',
  usage: '--stream S [--limit N] [--json]',
  optionHelp: [['--stream S', 'sdc:events, sdc:telemetry or sdc:gw:ID:commands'], ['--limit N', 'Entries at most (default 1000)'], ['--json', 'Print { items: [...] } as JSON']],
  options: { stream: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const stream = requireOption(args, 'stream');
    const limit = integerOption(args, 'limit', 1_000, 1, 50_000);
    const api = await apiClient(io);
    const items: DeadEntry[] = [];
    let after: string | null = null;
    for (let page = 0; page < listPagesMax && items.length < limit; page++) {
      const query = new URLSearchParams({ stream, limit: String(Math.min(500, limit - items.length)) });
      if (after !== null) query.set('after', after);
      const answer: { items: DeadEntry[]; next_after: string | null } = await api.get(`/v1/dead-letters/streams/entries?${query.toString()}`);
      items.push(...answer.items);
      after = answer.next_after;
      if (after === null) break;
    }
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('entry\tkind\tdevice\tdeliveries\treason\n');
    for (const e of items) io.stdout(`${shownValue(e.id)}\t${shownValue(e.kind)}\t${shownValue(e.device_id)}\t${shownValue(e.delivery_count)}\t${shownValue(e.reason)}\n`);
    return 0;
  },
};

const replayEntry: Command = {
  name: 'replay-entry',
  summary: 'Append a dead bus entry to its stream again and remove it from <stream>:dead (POST /v1/dead-letters/streams/replay); audited',
  usage: 'ID --stream S [--json]',
  optionHelp: [['--stream S', 'The entry\'s source stream'], ['--json', 'Print the answer as JSON']],
  options: { stream: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'entry id');
    const stream = requireOption(args, 'stream');
    const answer = await (await apiClient(io)).post<{ stream: string; id: string; new_id: string }>('/v1/dead-letters/streams/replay', { stream, id });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${shownValue(answer.id)}\treplayed\t${shownValue(answer.stream)}\t${shownValue(answer.new_id)}\n`);
    return 0;
  },
};

const discardEntry: Command = {
  name: 'discard-entry',
  summary: 'Remove a dead bus entry for good, with a reason (POST /v1/dead-letters/streams/discard); audited',
  usage: 'ID --stream S --reason TEXT [--json]',
  optionHelp: [['--stream S', 'The entry\'s source stream'], ['--reason TEXT', 'Why (required; kept in the audit log)'], ['--json', 'Print the answer as JSON']],
  options: { stream: { type: 'string' }, reason: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'entry id');
    const stream = requireOption(args, 'stream');
    const reason = requireOption(args, 'reason');
    const answer = await (await apiClient(io)).post<{ stream: string; id: string; reason: string }>('/v1/dead-letters/streams/discard', { stream, id, reason });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${shownValue(answer.id)}\tdiscarded\t${shownValue(answer.stream)}\t${shownValue(answer.reason)}\n`);
    return 0;
  },
};

export const dlqCommands: CommandGroup = {
  name: 'dlq',
  summary: 'Dead letters: commands (list, retry, discard) and dead bus entries (streams, entries, replay-entry, discard-entry); sdc login first, operator role',
  commands: [list, retry, discard, streams, entries, replayEntry, discardEntry],
};
