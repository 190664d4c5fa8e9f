import { createHash, KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { SdcError } from '../../core/errors/index.js';
import { encodeCanonical, parseTufJson, type TufJsonObject } from '../../core/tuf/olpc-json.js';
import { apiClient, onePositional, segment, type ApiClient } from '../api-client.js';
import { integerOption, requireOption, type CliIo, type Command, type CommandGroup } from '../command.js';
import { tufKeyPassphrase, tufKeyPassphraseEnv } from './tuf-key-passphrase.js';
import { shownValue } from '../shown-text.js';

/**
 * `sdc release`: releases through a running control plane (sdc login first; docs/ota.md,
 * "Releases"). `sign` is the one step that needs a release signer's offline key: it fetches the
 * targets metadata proposed for the release, checks that it is canonical targets metadata listing
 * this release's artifact with the digests the server verified, signs its exact bytes locally and
 * sends only the signature. The key never leaves the signer's machine.
 */

interface ReleaseView {
  id: string; release_counter: number; version: string; state: string; target_path: string;
  artifact: { length: number; sha256: string; sha512: string } | null; signatures: Array<{ keyid: string; signed_by: string }>;
}
interface Proposal { release_id: string; targets_version: number; signed_canonical: string; keyids: string[]; threshold: number }

function print(io: CliIo, json: boolean, release: ReleaseView): void {
  if (json) {
    io.stdout(JSON.stringify(release) + '\n');
    return;
  }
  const artifact = release.artifact === null ? 'no artifact' : `${shownValue(release.artifact.length)} bytes sha256 ${shownValue(release.artifact.sha256)}`;
  io.stdout(`${shownValue(release.id)}\t${shownValue(release.version)}\tcounter ${shownValue(release.release_counter)}\t${shownValue(release.state)}\t${shownValue(release.target_path)}\t${artifact}\tsignatures ${release.signatures.length}\n`);
}

const jsonOption = { json: { type: 'boolean' } } as const;
const jsonHelp = ['--json', 'Print the release as JSON'] as const;

const create: Command = {
  name: 'create',
  summary: 'Create a release (POST /v1/releases): a draft with its target custom data; the server assigns the next release counter',
  usage: '--id ID --version X.Y.Z --artifact-name NAME --platform P [--platform P...] --min-agent-version X.Y.Z [--reboot] [--health-timeout-ms N] [--probe NAME...] [--json]',
  optionHelp: [
    ['--id ID', 'Release id (the TUF target path is ID/NAME)'], ['--version X.Y.Z', 'The release\'s version'],
    ['--artifact-name NAME', 'The artifact\'s file name'], ['--platform P', 'A platform it installs on (repeat for several)'],
    ['--min-agent-version X.Y.Z', 'Oldest agent that may install it'], ['--reboot', 'The update needs a reboot'],
    ['--health-timeout-ms N', 'Post-install health check timeout (default 300000)'], ['--probe NAME', 'A health probe (repeat)'], jsonHelp,
  ],
  options: {
    id: { type: 'string' }, version: { type: 'string' }, 'artifact-name': { type: 'string' }, platform: { type: 'string', multiple: true },
    'min-agent-version': { type: 'string' }, reboot: { type: 'boolean' }, 'health-timeout-ms': { type: 'string' }, probe: { type: 'string', multiple: true }, ...jsonOption,
  },
  async run(args, io) {
    const platforms = (args.values.platform as string[] | undefined) ?? [];
    if (platforms.length === 0) throw new SdcError('CLI_USAGE', 'give at least one --platform');
    const body = {
      id: requireOption(args, 'id'), version: requireOption(args, 'version'), artifact_name: requireOption(args, 'artifact-name'), platforms,
      min_agent_version: requireOption(args, 'min-agent-version'), reboot_required: args.values.reboot === true,
      health_check: { timeout_ms: integerOption(args, 'health-timeout-ms', 300_000, 1, 3_600_000), probes: (args.values.probe as string[] | undefined) ?? [] },
    };
    print(io, args.values.json === true, await (await apiClient(io)).post<ReleaseView>('/v1/releases', body));
    return 0;
  },
};

/** Streams the file twice: once for its SHA-256 (declared in a header), once as the body; the server checks both. */
async function uploadFile(api: ApiClient, id: string, file: string): Promise<ReleaseView> {
  const { sha256, length } = await describeFile(file);
  const url = new URL(`/v1/releases/${segment(id)}/artifact`, api.login.server);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'PUT', ca: api.login.ca_pem, minVersion: 'TLSv1.3',
      headers: { authorization: `Bearer ${api.login.token}`, 'content-type': 'application/octet-stream', 'content-length': String(length), 'x-sdc-artifact-sha256': sha256 },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => { if (chunks.length < 1024) chunks.push(chunk); });
      res.on('end', () => {
        let parsed: { error?: { code?: string; message?: string } } & Partial<ReleaseView>;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof parsed;
        } catch {
          reject(new SdcError('HTTP_ANSWER_INVALID', `the upload was answered ${res.statusCode} without JSON`));
          return;
        }
        if (res.statusCode === 200) resolve(parsed as ReleaseView);
        else reject(new SdcError('HTTP_REFUSED', `PUT ${url.pathname} refused with ${parsed.error?.code ?? res.statusCode}: ${parsed.error?.message ?? ''}`, { status: res.statusCode ?? 0, serverCode: parsed.error?.code ?? '' }));
      });
      res.on('error', reject);
    });
    req.on('error', (error) => reject(SdcError.is(error) ? error : new SdcError('HTTP_UNREACHABLE', `${url.origin}: ${error.message}`)));
    createReadStream(file).on('error', (error) => req.destroy(error)).pipe(req);
  });
}

interface PresignedUpload { method: 'PUT'; url: string; headers: { 'content-length': string } }

/**
 * The presigned path (docs/ota.md, "Releases"): a URL for the declared length and SHA-256, the
 * file PUT straight to the blob store (the API's CA when the store is the control plane's own
 * origin, the system's otherwise), then the server's check of what arrived.
 */
async function uploadPresigned(api: ApiClient, id: string, file: string): Promise<ReleaseView> {
  const declared = await describeFile(file);
  const presigned = await api.post<PresignedUpload>(`/v1/releases/${segment(id)}/artifact-upload-url`, declared);
  const target = new URL(presigned.url);
  const sameOrigin = target.origin === new URL(api.login.server).origin;
  const status = await new Promise<number>((resolve, reject) => {
    const send = target.protocol === 'https:' ? request : httpRequest;
    const req = send(target, { method: 'PUT', headers: presigned.headers, ...(sameOrigin ? { ca: api.login.ca_pem } : {}) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', (error) => reject(new SdcError('HTTP_UNREACHABLE', `${target.origin}: ${error.message}`)));
    createReadStream(file).on('error', (error) => req.destroy(error)).pipe(req);
  });
  if (status !== 200) throw new SdcError('HTTP_REFUSED', `the blob store refused the presigned PUT with ${status}`, { status, serverCode: '' });
  return api.post<ReleaseView>(`/v1/releases/${segment(id)}/artifact-upload-complete`, declared);
}

async function describeFile(file: string): Promise<{ sha256: string; length: number }> {
  let length: number;
  try {
    length = (await stat(file)).size;
  } catch (error) {
    throw new SdcError('CLI_INPUT', `--file ${file} cannot be read`, {}, { cause: error });
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex'), length };
}

const upload: Command = {
  name: 'upload',
  summary: 'Upload a release\'s artifact (PUT /v1/releases/ID/artifact, or --presigned straight to the blob store); the server checks it against the length and SHA-256 computed here',
  usage: 'ID --file F [--presigned] [--json]',
  optionHelp: [['--file F', 'The artifact'], ['--presigned', 'PUT to a presigned blob store URL (length signed), then have the server check it'], jsonHelp],
  options: { file: { type: 'string' }, presigned: { type: 'boolean' }, ...jsonOption },
  allowPositionals: true,
  async run(args, io) {
    const api = await apiClient(io);
    const id = onePositional(args.positionals, 'release id');
    const file = requireOption(args, 'file');
    print(io, args.values.json === true, args.values.presigned === true ? await uploadPresigned(api, id, file) : await uploadFile(api, id, file));
    return 0;
  },
};

/**
 * Checks what is about to be signed: canonical OLPC JSON (so the bytes are exactly what clients
 * will verify), targets metadata of the proposed version, listing this release's target with the
 * length and SHA-256 the server verified at upload. A server that proposed anything else is refused.
 */
function checkProposal(proposal: Proposal, release: ReleaseView): TufJsonObject {
  const bytes = new TextEncoder().encode(proposal.signed_canonical);
  const signed = parseTufJson(bytes) as TufJsonObject;
  if (encodeCanonical(signed) !== proposal.signed_canonical) throw new SdcError('CLI_INPUT', 'the proposal is not in OLPC canonical form: refusing to sign it');
  if (signed['_type'] !== 'targets' || signed['version'] !== proposal.targets_version) throw new SdcError('CLI_INPUT', 'the proposal is not targets metadata of the version announced');
  const target = (signed['targets'] as TufJsonObject | undefined)?.[release.target_path] as TufJsonObject | undefined;
  const hashes = target?.['hashes'] as TufJsonObject | undefined;
  if (release.artifact === null || target === undefined || target['length'] !== release.artifact.length || hashes?.['sha256'] !== release.artifact.sha256) {
    throw new SdcError('CLI_INPUT', `the proposal does not list ${release.target_path} with the uploaded artifact's length and sha256: refusing to sign it`);
  }
  return signed;
}

const sign: Command = {
  name: 'sign',
  summary: 'Sign the targets metadata proposed for a release with one release signer\'s offline key (the key stays here; only the signature is sent)',
  usage: `ID --key FILE [--passphrase-file F] [--json]`,
  optionHelp: [
    ['--key FILE', 'A targets (release signer) key file from sdc ota init, encrypted PKCS#8 PEM'],
    ['--passphrase-file F', `The key's passphrase, first line (else ${tufKeyPassphraseEnv})`], jsonHelp,
  ],
  options: { key: { type: 'string' }, 'passphrase-file': { type: 'string' }, ...jsonOption },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'release id');
    const [{ readPrivateKeyFile }, { tufSigningKey }] = await Promise.all([import('../../trust/key-files.js'), import('../../server/ota/tuf-keys.js')]);
    const key = tufSigningKey(KeyObject.from(await readPrivateKeyFile({ path: requireOption(args, 'key'), passphrase: await tufKeyPassphrase(args, io) })));
    const api = await apiClient(io);
    const release = await api.get<ReleaseView>(`/v1/releases/${segment(id)}`);
    const proposal = await api.get<Proposal>(`/v1/releases/${segment(id)}/targets-proposal`);
    if (!proposal.keyids.includes(key.keyid)) throw new SdcError('CLI_INPUT', `key ${key.keyid} is not a targets key of this repository (${proposal.keyids.join(', ')})`);
    const signed = checkProposal(proposal, release);
    const signature = key.sign(new TextEncoder().encode(proposal.signed_canonical));
    const after = await api.post<ReleaseView>(`/v1/releases/${segment(id)}/signatures`, { keyid: key.keyid, sig: signature });
    if (args.values.json === true) io.stdout(JSON.stringify(after) + '\n');
    else {
      io.stdout(`signed targets version ${shownValue(proposal.targets_version)} (${Object.keys(signed['targets'] as TufJsonObject).length} target(s), expires ${shownValue(String(signed['expires']))}) with key ${key.keyid}\n`);
      const people = new Set(after.signatures.map((signature) => signature.signed_by)).size;
      io.stdout(`${after.signatures.length} key signature(s) sent by ${people} user(s), ${shownValue(proposal.threshold)} of each needed; release ${shownValue(after.id)} is ${shownValue(after.state)}\n`);
    }
    return 0;
  },
};

function simpleAction(name: 'publish' | 'revoke', summary: string): Command {
  return {
    name, summary, usage: name === 'revoke' ? 'ID --reason TEXT [--json]' : 'ID [--json]',
    optionHelp: name === 'revoke' ? [['--reason TEXT', 'Why (recorded in the audit log)'], jsonHelp] : [jsonHelp],
    options: { ...(name === 'revoke' ? { reason: { type: 'string' } } : {}), ...jsonOption },
    allowPositionals: true,
    async run(args, io) {
      const id = onePositional(args.positionals, 'release id');
      const body = name === 'revoke' ? { reason: requireOption(args, 'reason') } : {};
      print(io, args.values.json === true, await (await apiClient(io)).post<ReleaseView>(`/v1/releases/${segment(id)}/${name}`, body));
      return 0;
    },
  };
}

const list: Command = {
  name: 'list',
  summary: 'Releases, newest first (GET /v1/releases)',
  usage: '[--json]',
  optionHelp: [['--json', 'One JSON object per line']],
  options: { ...jsonOption },
  async run(args, io) {
    const { items } = await (await apiClient(io)).get<{ items: ReleaseView[] }>('/v1/releases');
    for (const release of items) print(io, args.values.json === true, release);
    return 0;
  },
};

const show: Command = {
  name: 'show',
  summary: 'One release (GET /v1/releases/ID)',
  usage: 'ID [--json]',
  optionHelp: [jsonHelp],
  options: { ...jsonOption },
  allowPositionals: true,
  async run(args, io) {
    print(io, args.values.json === true, await (await apiClient(io)).get<ReleaseView>(`/v1/releases/${segment(onePositional(args.positionals, 'release id'))}`));
    return 0;
  },
};

export const releaseCommands: CommandGroup = {
  name: 'release',
  summary: 'OTA releases, through a running control plane (sdc login first): create, upload, sign (offline key), publish, revoke',
  commands: [
    create, upload, sign,
    simpleAction('publish', 'Publish a signed release (needs a threshold of release signers\' signatures): new targets, snapshot and timestamp'),
    simpleAction('revoke', 'Revoke a release: never served or rolled out again, left out of the next targets version'),
    list, show,
  ],
};
