import { createHash } from 'node:crypto';
import { request } from 'node:https';
import { integerOption, type Command, type CommandGroup } from '../command.js';
import { apiClient, onePositional, segment } from '../api-client.js';
import { SdcError } from '../../core/errors/index.js';
import { privateFileMode, writeFileAtomic } from '../../runtime/atomic-file.js';
import { shownValue } from '../shown-text.js';

/**
 * Artifacts asked of devices (docs/artifacts.md): `request` sends EXEC_COLLECT_ARTIFACT (the
 * device's logs, or a screenshot), `list` shows them with what the devices' signed results
 * report, `get` downloads one decrypted (the control plane checks its digest and its device and
 * command binding first) into a 0600 file.
 */

interface ArtifactView {
  id: string; device_id: string; kind: string; state: string; created_by: string; created_at_ms: number;
  sha256: string | null; length: number | null; plaintext_length: number | null; content_type: string | null;
}

const kinds = ['logs', 'screenshot'] as const;
/** The largest artifact `get` keeps in memory before writing it: the control plane's own limit is 16 MiB. */
const downloadBytesMax = 64 * 1024 * 1024;

const requestArtifact: Command = {
  name: 'request',
  summary: 'Ask a device for an artifact (POST /v1/commands with EXEC_COLLECT_ARTIFACT); the command id is the artifact id',
  usage: '--device ID --kind logs|screenshot [--json]',
  optionHelp: [['--device ID', 'The device'], ['--kind K', 'logs (the agent\'s journals) or screenshot (where the platform has one)'], ['--json', 'Print the command as JSON']],
  options: { device: { type: 'string' }, kind: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const deviceId = args.values.device;
    const kind = args.values.kind;
    if (typeof deviceId !== 'string' || deviceId.length === 0) throw new SdcError('CLI_USAGE', '--device is required');
    if (typeof kind !== 'string' || !(kinds as readonly string[]).includes(kind)) throw new SdcError('CLI_USAGE', `--kind must be one of ${kinds.join(', ')}`);
    const command = await (await apiClient(io)).post<{ id: string; state: string }>('/v1/commands', { device_id: deviceId, opcode: 'EXEC_COLLECT_ARTIFACT', args: { kind } });
    io.stdout(args.values.json === true ? JSON.stringify(command) + '\n' : `${shownValue(command.id)}\t${shownValue(command.state)}\t(sdc command watch ${shownValue(command.id)}; then sdc artifact get ${shownValue(command.id)} --out FILE)\n`);
    return 0;
  },
};

const list: Command = {
  name: 'list',
  summary: 'Artifacts, newest first (GET /v1/artifacts), with the length and SHA-256 of the sealed upload each device\'s signed result reports',
  usage: '[--device ID] [--limit N] [--json]',
  optionHelp: [['--device ID', 'Only this device\'s artifacts'], ['--limit N', 'At most N (1-200, default 50)'], ['--json', 'Print { items: [...] } as JSON']],
  options: { device: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const query = new URLSearchParams({ limit: String(integerOption(args, 'limit', 50, 1, 200)) });
    if (typeof args.values.device === 'string') query.set('device_id', args.values.device);
    const { items } = await (await apiClient(io)).get<{ items: ArtifactView[] }>(`/v1/artifacts?${query.toString()}`);
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('artifact\tdevice\tkind\tstate\tbytes\tsealed_sha256\trequested_by\trequested_at\n');
    for (const a of items) {
      io.stdout(`${shownValue(a.id)}\t${shownValue(a.device_id)}\t${shownValue(a.kind)}\t${shownValue(a.state)}\t${shownValue(a.plaintext_length)}\t${shownValue(a.sha256)}\t${shownValue(a.created_by)}\t${new Date(a.created_at_ms).toISOString()}\n`);
    }
    return 0;
  },
};

const get: Command = {
  name: 'get',
  summary: 'Download an artifact decrypted (GET /v1/artifacts/ID, operator; audited) into FILE (0600)',
  usage: 'ID --out FILE [--json]',
  optionHelp: [['--out FILE', 'Where to write the bytes (replaced atomically, mode 0600)'], ['--json', 'Print { id, file, bytes, sha256 } as JSON']],
  options: { out: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'artifact id');
    const out = args.values.out;
    if (typeof out !== 'string' || out.length === 0) throw new SdcError('CLI_USAGE', '--out FILE is required');
    const api = await apiClient(io);
    const url = new URL(`/v1/artifacts/${segment(id)}`, api.login.server);
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const req = request(url, { method: 'GET', ca: api.login.ca_pem, minVersion: 'TLSv1.3', headers: { authorization: `Bearer ${api.login.token}` } }, (res) => {
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          length += chunk.length;
          if (length > downloadBytesMax) {
            res.destroy();
            reject(new SdcError('HTTP_ANSWER_INVALID', `the artifact exceeds ${downloadBytesMax} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          if (res.statusCode === 200) return resolve(body);
          let error: { code?: string; message?: string } | undefined;
          try {
            error = (JSON.parse(body.toString('utf8')) as { error?: { code?: string; message?: string } }).error;
          } catch {
            error = undefined;
          }
          reject(new SdcError('HTTP_REFUSED', `GET ${url.pathname} refused with ${error?.code ?? res.statusCode}: ${error?.message ?? ''}`, { status: res.statusCode ?? 0, serverCode: error?.code ?? '' }));
        });
        res.on('error', reject);
      });
      req.on('error', (error) => reject(SdcError.is(error) ? error : new SdcError('HTTP_UNREACHABLE', `${url.origin}: ${error.message}`)));
      req.end();
    });
    await writeFileAtomic(out, bytes, { mode: privateFileMode });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    io.stdout(args.values.json === true ? JSON.stringify({ id, file: out, bytes: bytes.length, sha256 }) + '\n' : `${id}\t${out}\t${bytes.length} bytes\tsha256 ${sha256}\n`);
    return 0;
  },
};

const deleteArtifact: Command = {
  name: 'delete',
  summary: 'Delete an artifact\'s stored object (DELETE /v1/artifacts/ID; operator; audited artifact.deleted); its downloads then answer ARTIFACT_NOT_FOUND',
  usage: 'ID [--json]',
  optionHelp: [['--json', 'Print { id, length } as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'artifact id');
    const gone = await (await apiClient(io)).delete<{ id: string; length: number }>(`/v1/artifacts/${segment(id)}`);
    io.stdout(args.values.json === true ? JSON.stringify(gone) + '\n' : `${shownValue(gone.id)}\tdeleted\t${shownValue(gone.length)} bytes\n`);
    return 0;
  },
};

const prune: Command = {
  name: 'prune',
  summary: 'Run the retention pass now (POST /v1/artifacts/retention; admin): delete artifacts past the age limit or the total byte budget, oldest first; each audited',
  usage: '[--json]',
  optionHelp: [['--json', 'Print { deleted: [...] } as JSON']],
  options: { json: { type: 'boolean' } },
  async run(args, io) {
    const { deleted } = await (await apiClient(io)).post<{ deleted: Array<{ id: string; length: number; reason: string }> }>('/v1/artifacts/retention', {});
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ deleted }) + '\n');
      return 0;
    }
    for (const d of deleted) io.stdout(`${shownValue(d.id)}\tdeleted\t${shownValue(d.length)} bytes\t${shownValue(d.reason)}\n`);
    io.stdout(`${deleted.length} artifact(s) deleted\n`);
    return 0;
  },
};

const keys: Command = {
  name: 'keys',
  summary: 'The artifact keys held (GET /v1/artifacts/keys; admin): the current one, which new grants hand out, and the retired ones',
  usage: '[--json]',
  optionHelp: [['--json', 'Print { items: [...] } as JSON']],
  options: { json: { type: 'boolean' } },
  async run(args, io) {
    const { items } = await (await apiClient(io)).get<{ items: Array<{ key_id: string; current: boolean }> }>('/v1/artifacts/keys');
    if (args.values.json === true) io.stdout(JSON.stringify({ items }) + '\n');
    else for (const key of items) io.stdout(`${shownValue(key.key_id)}\t${key.current ? 'current' : 'retired'}\n`);
    return 0;
  },
};

const rotateKey: Command = {
  name: 'rotate-key',
  summary: 'Rotate the artifact key (POST /v1/artifacts/keys/rotate; admin; audited): later uploads are sealed to a new key, the old one still opens earlier uploads until removed',
  usage: '[--json]',
  optionHelp: [['--json', 'Print { retired, current } as JSON']],
  options: { json: { type: 'boolean' } },
  async run(args, io) {
    const rotated = await (await apiClient(io)).post<{ retired: string; current: string }>('/v1/artifacts/keys/rotate', {});
    io.stdout(args.values.json === true ? JSON.stringify(rotated) + '\n' : `current ${shownValue(rotated.current)}\tretired ${shownValue(rotated.retired)}\n`);
    return 0;
  },
};

const removeKey: Command = {
  name: 'remove-key',
  summary: 'Remove a retired artifact key (DELETE /v1/artifacts/keys/KEY_ID; admin; audited): uploads sealed to it no longer open (ARTIFACT_KEY_UNKNOWN)',
  usage: 'KEY_ID [--json]',
  optionHelp: [['--json', 'Print { key_id, removed } as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const keyId = onePositional(args.positionals, 'key id');
    const removed = await (await apiClient(io)).delete<{ key_id: string; removed: boolean }>(`/v1/artifacts/keys/${segment(keyId)}`);
    io.stdout(args.values.json === true ? JSON.stringify(removed) + '\n' : `${shownValue(removed.key_id)}\tremoved\n`);
    return 0;
  },
};

export const artifactCommands: CommandGroup = {
  name: 'artifact', summary: 'Artifacts from devices (logs, screenshots), sealed to the control plane: request, list, get, delete, prune, keys, rotate-key, remove-key (sdc login first; get and delete need the operator role, prune and the key commands the admin)',
  commands: [requestArtifact, list, get, deleteArtifact, prune, keys, rotateKey, removeKey],
};
