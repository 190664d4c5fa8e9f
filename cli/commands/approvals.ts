import { randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SdcError } from '../../core/errors/index.js';
import { base64urlFromBytes, bytesFromBase64url } from '../../core/crypto/bytes.js';
import { nobleSha256 } from '../../core/crypto/sha256-noble.js';
import { approvalSubjectHash, signApproval, type ApprovalDecision, type ApprovalSubject } from '../../core/protocol/approvals.js';
import { rolloutApprovalSubjectHash, type RolloutApprovalSubject } from '../../core/ota/rollout-approval.js';
import { rolloutResumeSubjectHash, type RolloutResumeSubject } from '../../core/ota/rollout-resume-approval.js';
import { canonicalize } from '../../core/protocol/canonical-json.js';
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import { createFileExclusive, privateFileMode } from '../../runtime/atomic-file.js';
import { ownerOnlyMode, permissionBits } from '../secret-file.js';
import { passwordEnv, passwordFileEnv, readPasswordOption, requireOption, type CliIo, type Command, type CommandGroup, type ParsedCommandArgs } from '../command.js';
import { apiClient, getAllPages, onePositional, segment, type ApiClient } from '../api-client.js';
import { credentialsPath } from '../credentials.js';
import { durationOption, durationOptions, type DurationOptionSpec } from '../duration-option.js';
import { escapedJsonText, quotedText, shownText } from '../shown-text.js';

/**
 * The approver's side of the approval flow (docs/policy.md "Approvals"). The approval signing key
 * is the operator's own Ed25519 key: created on first use next to the stored login, in a 0600
 * file of the 0700 credentials directory (one per user name), and registered with the server
 * (public key only; PUT /v1/users/me/signing-key is idempotent, so every approve re-states it;
 * registering it the first time, or in place of another key, needs the password, registerSigningKey).
 * Before signing, the CLI recomputes the command hash from the subject the server shows and
 * refuses when they differ, so what is signed is what was shown.
 */

const provider = createNodeEd25519Provider();
export const passwordStdinHelp: [string, string] = ['--password-stdin', `Your password from the first line of stdin (or ${passwordEnv}), used only when the server does not hold your key file's key yet (the first approval, a new machine)`];
export const approvalValidity: DurationOptionSpec = { name: 'valid-for', fallbackMs: 0, minMs: 0, maxMs: 7 * 86_400_000 };

export interface PendingCommandView {
  id: string; device_id: string; opcode: string; args: Record<string, unknown>; state: string; expires_at_ms: number; created_by: string;
  approval?: { rule_id: string; count: number; roles: string[]; subject: ApprovalSubject; command_sha256: string };
  decisions?: Array<{ approver: string; decision: string }>;
}

/** The user's approval key file: `signing-key-<name>.json` beside credentials.json. */
export function signingKeyPath(env: CliIo['env'], userName: string): string {
  return join(dirname(credentialsPath(env)), `signing-key-${userName}.json`);
}

/** A key file holds a name and a 32-byte seed: a few dozen bytes; anything larger is not ours. */
const signingKeyFileBytesMax = 4096;

/**
 * The seed in the key file at `path`; undefined only when there is no such file (ENOENT). A file
 * group or others may read or write is refused (TRUST_KEY_FILE_PERMISSIONS, as for every other
 * private key; it is never replaced either), and its size is checked before it is read (review h2,
 * finding 7).
 */
async function readSigningKey(path: string, userName: string): Promise<Uint8Array | undefined> {
  let text = '{}';
  try {
    const handle = await open(path, 'r');
    try {
      const info = await handle.stat();
      // The code trust/key-files.ts gives every private key (not imported: it loads the key-file codecs at CLI start).
      if (!ownerOnlyMode(info.mode)) {
        throw new SdcError('TRUST_KEY_FILE_PERMISSIONS', `${path} has mode ${permissionBits(info.mode)}; run chmod 600 on it`, { path });
      }
      if (info.isFile() && info.size <= signingKeyFileBytesMax) text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (SdcError.is(error)) throw error;
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') return undefined;
    // An existing key that cannot be read now (permissions, a broken link) is never replaced by a new one.
    throw new SdcError('CLI_INPUT', `the signing key file cannot be read: ${path}`, { path, errno: errno ?? 'unknown' }, { cause: error });
  }
  let parsed: { seed?: unknown; name?: unknown } = {};
  try {
    parsed = JSON.parse(text.length <= signingKeyFileBytesMax ? text : '{}') as { seed?: unknown; name?: unknown };
  } catch {
    // Refused below.
  }
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.seed !== 'string' || parsed.name !== userName) {
    throw new SdcError('CLI_INPUT', `the signing key file is not readable: ${path}`, { path });
  }
  return bytesFromBase64url(parsed.seed, { code: 'CLI_INPUT', name: 'seed', length: 32 });
}

/**
 * The stored seed, or a new one when there is no key file: created exclusively, 0600 (written
 * under a random temp name, then linked to the path, which fails if it exists), so of two sdc
 * processes creating it at once one key wins and both use it. Any read error other than "no such
 * file" is refused: it never replaces an existing key (review h12).
 */
export async function loadOrCreateSigningKey(env: CliIo['env'], userName: string): Promise<{ seed: Uint8Array; created: boolean; path: string }> {
  const path = signingKeyPath(env, userName);
  const stored = await readSigningKey(path, userName);
  if (stored !== undefined) return { seed: stored, created: false, path };
  const seed = new Uint8Array(randomBytes(32));
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (await createFileExclusive(path, JSON.stringify({ name: userName, alg: 'Ed25519', seed: base64urlFromBytes(seed) }) + '\n', { mode: privateFileMode })) {
    return { seed, created: true, path };
  }
  // Another process created it meanwhile: its key is the one.
  const theirs = await readSigningKey(path, userName);
  if (theirs === undefined) throw new SdcError('CLI_INPUT', `the signing key file was removed while it was being created: ${path}`, { path });
  return { seed: theirs, created: false, path };
}

/** A figure the server sends (typed a number, but nothing on this side checks it is one): shown as shownText shows a string. */
function shownFigure(value: number): string {
  return shownText(String(value));
}

/** The pending command, checked: the subject the server shows is this command, and its hash is the one it asks to sign. */
export function checkedSubject(command: PendingCommandView): { subject: ApprovalSubject; sha256: string } {
  const approval = command.approval;
  if (command.state !== 'pending_approval' || approval === undefined) {
    // The server's words in a refusal are shown as the prompt shows them (shownText): a state cannot carry ESC or a bidi override to the terminal.
    throw new SdcError('APPROVAL_NOT_PENDING', `command ${shownText(String(command.id))} is ${shownText(String(command.state))}, not waiting for approvals`);
  }
  const { subject } = approval;
  const same = subject.id === command.id && subject.device_id === command.device_id && subject.opcode === command.opcode
    && canonicalize(subject.args) === canonicalize(command.args) && subject.expires_at === command.expires_at_ms && subject.requested_by === command.created_by;
  const sha256 = approvalSubjectHash(subject, nobleSha256);
  if (!same || sha256 !== approval.command_sha256) throw new SdcError('APPROVAL_STATEMENT_MISMATCH', 'the server\'s approval subject does not match the command it shows; nothing signed');
  return { subject, sha256 };
}

/**
 * Registers the key file's public key (a no-op when it is the registered one). When the server
 * does not hold it yet (a first key, a new machine, a lost key file), registering it needs the
 * account's password (security review 2026-12-05, finding 4): read only then, from `password()`
 * (--password-stdin, SDC_PASSWORD or SDC_PASSWORD_FILE), and sent with the first PUT; without one
 * the CLI refuses before sending anything, saying how to give it. The current key is asked for
 * first (GET), so the usual approve (key already registered) neither reads a password nor writes:
 * a PUT without the password that the server refuses is audited `user.signing_key_refused`, the
 * sign of a stolen token (docs/security/threat-model.md), and trying one first wrote that sign at
 * every approver's first registration (review h11, finding 4).
 */
export async function registerSigningKey(api: Pick<ApiClient, 'get' | 'put'>, publicKey: string, options: { keyPath: string; password: () => Promise<string | undefined> }): Promise<string> {
  let current: { kid: string; public_key: string } | undefined;
  try {
    current = await api.get<{ kid: string; public_key: string }>('/v1/users/me/signing-key');
  } catch (error) {
    if (!SdcError.is(error, 'HTTP_REFUSED') || error.details['serverCode'] !== 'APPROVAL_KEY_UNKNOWN') throw error;
  }
  if (current?.public_key === publicKey) return current.kid;
  const currentPassword = await options.password();
  if (currentPassword === undefined) {
    throw new SdcError('APPROVAL_KEY_PROOF_REQUIRED', `the server does not hold the approval signing key in ${options.keyPath} yet; `
      + `registering it needs your password: run again with --password-stdin (or ${passwordEnv})`);
  }
  return (await api.put<{ kid: string }>('/v1/users/me/signing-key', { public_key: publicKey, current_password: currentPassword })).kid;
}

/** The password for a key replacement, when the user gave one (never asked for otherwise). */
export function givenPassword(args: ParsedCommandArgs, io: CliIo): () => Promise<string | undefined> {
  const given = args.values['password-stdin'] === true || (io.env[passwordEnv] ?? '') !== '' || (io.env[passwordFileEnv] ?? '') !== '';
  return async () => (given ? readPasswordOption(args, io) : undefined);
}

/** How an approver decides: how long the approval counts (0: as long as the subject), the rejection's reason, the password for a first key. */
export interface DecideOptions { readonly validForMs: number; readonly reason?: string; readonly password: () => Promise<string | undefined> }

async function decide(io: CliIo, api: ApiClient, id: string, decision: ApprovalDecision, options: DecideOptions): Promise<Record<string, unknown>> {
  const command = await api.get<PendingCommandView>(`/v1/commands/${segment(id)}`);
  const { sha256 } = checkedSubject(command);
  const signed = await signDecision(io, api, { id: command.id, sha256, expiresAtMs: command.expires_at_ms }, decision, options);
  return api.post(`/v1/commands/${segment(id)}/${decision}`, { command_sha256: sha256, ...signed });
}

/**
 * The approver's signed statement about one subject (a command, or a rollout: its id as
 * `command_id`, its subject hash as `command_sha256`): the key file loaded or created and
 * registered, the expiry (until the subject's unless asked for less), the signature. The body's
 * fields but the hash, whose name differs by route.
 */
async function signDecision(io: CliIo, api: ApiClient, subject: { id: string; sha256: string; expiresAtMs: number }, decision: ApprovalDecision, options: DecideOptions) {
  const { seed, created, path } = await loadOrCreateSigningKey(io.env, api.login.name);
  if (created) io.stderr(`created your approval signing key in ${path}\n`);
  const kid = await registerSigningKey(api, base64urlFromBytes(provider.publicKeyFromSeed(seed)), { keyPath: path, password: options.password });
  const expiresAt = options.validForMs > 0 ? Math.min(Date.now() + options.validForMs, subject.expiresAtMs) : subject.expiresAtMs;
  const signature = signApproval({
    // A rejection's reason is signed with it (decision 0005).
    statement: { command_id: subject.id, command_sha256: subject.sha256, decision, approver: api.login.name, kid, expires_at: expiresAt, ...(options.reason === undefined ? {} : { reason: options.reason }) }, seed, provider,
  });
  return { kid, expires_at_ms: expiresAt, signature, ...(options.reason === undefined ? {} : { reason: options.reason }) };
}

/** A rollout as GET /v1/rollouts/{id} shows it, the part an approver checks. */
export interface PendingRolloutView {
  id: string; release_id: string; status: string; created_by: string; waves: Array<{ devices: string[] }>;
  approval: null | { count: number; roles: string[]; expires_at_ms: number; subject: RolloutApprovalSubject; subject_sha256: string; decisions: Array<{ approver: string; decision: string }> };
}

/**
 * The waiting rollout, checked: the subject the server shows is this rollout (id, release,
 * requester, every wave's devices) and its hash, recomputed here, is the one the server asks to be
 * signed; otherwise nothing is signed (APPROVAL_STATEMENT_MISMATCH).
 */
export function checkedRolloutSubject(rollout: PendingRolloutView): { subject: RolloutApprovalSubject; sha256: string } {
  const approval = rollout.approval;
  if (rollout.status !== 'pending_approval' || approval === null) {
    throw new SdcError('APPROVAL_NOT_PENDING', `rollout ${shownText(String(rollout.id))} is ${shownText(String(rollout.status))}, not waiting for approvals`);
  }
  const { subject } = approval;
  const same = subject.id === rollout.id && subject.release_id === rollout.release_id && subject.requested_by === rollout.created_by
    && subject.expires_at === approval.expires_at_ms && canonicalize(subject.waves.map((w) => w.devices)) === canonicalize(rollout.waves.map((w) => w.devices));
  const sha256 = rolloutApprovalSubjectHash(subject, nobleSha256);
  if (!same || sha256 !== approval.subject_sha256) throw new SdcError('APPROVAL_STATEMENT_MISMATCH', 'the server\'s approval subject does not match the rollout it shows; nothing signed');
  return { subject, sha256 };
}

/** What the approver is about to sign, in one line per fact (stderr, before signing). */
export function describeRolloutSubject(subject: RolloutApprovalSubject): string {
  const devices = subject.waves.reduce((n, wave) => n + wave.devices.length, 0);
  const { target } = subject;
  return `rollout ${shownText(subject.id)} asked by ${shownText(subject.requested_by)}: release ${shownText(subject.release_id)} ${shownText(target.version)} `
    + `(${shownText(target.path)}, ${shownFigure(target.length)} bytes, sha256 ${shownText(target.sha256)}) on ${shownText(subject.platform)}, ${devices} devices in ${subject.waves.length} wave(s), at most ${shownFigure(subject.devices_per_minute_max)}/min; approvals until ${new Date(subject.expires_at).toISOString()}\n`;
}

/** `sdc rollout approve|reject`: the checked subject, shown, signed and sent (POST /v1/rollouts/{id}/approve|reject). */
export async function decideRollout(io: CliIo, api: ApiClient, id: string, decision: ApprovalDecision, options: DecideOptions): Promise<Record<string, unknown>> {
  const rollout = await api.get<PendingRolloutView>(`/v1/rollouts/${segment(id)}`);
  const { subject, sha256 } = checkedRolloutSubject(rollout);
  io.stderr(describeRolloutSubject(subject));
  const signed = await signDecision(io, api, { id: rollout.id, sha256, expiresAtMs: subject.expires_at }, decision, options);
  return api.post(`/v1/rollouts/${segment(id)}/${decision}`, { rollout_sha256: sha256, ...signed });
}

/** A paused rollout with its resume request as GET /v1/rollouts/{id} shows it (decision 0019), the part an approver checks. */
export interface ResumableRolloutView {
  id: string; release_id: string; status: string; wave_index: number;
  resume_request: null | { id: string; waiting: boolean; expires_at_ms: number; subject: RolloutResumeSubject; subject_sha256: string };
}

/**
 * The waiting resume request, checked: its subject is about this rollout (id, release, current
 * wave) and this request (id, expiry), and its hash, recomputed here over all of it (the stop's
 * figures, the reason, the requester), is the one the server asks to be signed.
 */
export function checkedResumeSubject(rollout: ResumableRolloutView): { subject: RolloutResumeSubject; sha256: string; requestId: string } {
  const request = rollout.resume_request;
  if (rollout.status !== 'paused' || request === null || !request.waiting) {
    throw new SdcError('APPROVAL_NOT_PENDING', `rollout ${shownText(String(rollout.id))} has no resume request waiting for approvals`);
  }
  const { subject } = request;
  const same = subject.kind === 'ota_rollout_resume' && subject.request_id === request.id && subject.rollout_id === rollout.id && subject.release_id === rollout.release_id
    && subject.wave === rollout.wave_index && subject.expires_at === request.expires_at_ms;
  const sha256 = rolloutResumeSubjectHash(subject, nobleSha256);
  if (!same || sha256 !== request.subject_sha256) throw new SdcError('APPROVAL_STATEMENT_MISMATCH', 'the server\'s resume subject does not match the rollout and request it shows; nothing signed');
  return { subject, sha256, requestId: request.id };
}

/** The stop a resume request waives, in one line (stderr, before signing). */
export function describeResumeSubject(subject: RolloutResumeSubject): string {
  const s = subject.wave_stats;
  return `resume of rollout ${shownText(subject.rollout_id)} (request ${shownText(subject.request_id)}) asked by ${shownText(subject.requested_by)}: `
    + `${quotedText(subject.reason)}; `
    + `waives wave ${shownFigure(subject.wave + 1)}'s ${shownText(subject.safety_stop)} `
    + `(${shownFigure(s.failed)} of ${shownFigure(s.executed)} executed failed, ${shownFigure(s.succeeded)} of ${shownFigure(s.size)} succeeded; paused: ${shownText(subject.pause_reason)}); approvals until ${new Date(subject.expires_at).toISOString()}\n`;
}

/** `sdc rollout resume-approve|resume-reject`: the checked resume subject, shown, signed and sent. */
export async function decideRolloutResume(io: CliIo, api: ApiClient, id: string, decision: ApprovalDecision, options: DecideOptions): Promise<Record<string, unknown>> {
  const rollout = await api.get<ResumableRolloutView>(`/v1/rollouts/${segment(id)}`);
  const { subject, sha256, requestId } = checkedResumeSubject(rollout);
  io.stderr(describeResumeSubject(subject));
  const signed = await signDecision(io, api, { id: requestId, sha256, expiresAtMs: subject.expires_at }, decision, options);
  return api.post(`/v1/rollouts/${segment(id)}/resume-request/${decision}`, { request_id: requestId, subject_sha256: sha256, ...signed });
}

function describeCommand(command: PendingCommandView): string {
  const approval = command.approval;
  const have = (command.decisions ?? []).filter((d) => d.decision === 'approve').map((d) => d.approver);
  return `${shownText(command.id)} ${shownText(command.opcode)} ${escapedJsonText(canonicalize(command.args))} on ${shownText(command.device_id)}, asked by ${shownText(command.created_by)}; `
    + `${have.length}/${approval === undefined ? '?' : shownFigure(approval.count)} approvals from ${approval?.roles.map(shownText).join('|') ?? '?'}${have.length > 0 ? ` (${have.map(shownText).join(', ')})` : ''}; `
    + `expires ${new Date(command.expires_at_ms).toISOString()}`;
}

export const approveCommand: Command = {
  name: 'approve',
  summary: 'Approve a command waiting for approvals, signed with your approval key (created and registered on first use)',
  usage: 'ID [--valid-for 1h] [--password-stdin] [--json]',
  optionHelp: [
    ['--valid-for D', 'How long your approval counts, like 1h (default: until the command expires)'],
    passwordStdinHelp,
    ['--json', 'Print the answer as JSON'],
  ],
  options: { ...durationOptions(approvalValidity), 'password-stdin': { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'command id');
    const answer = await decide(io, await apiClient(io), id, 'approve', { validForMs: durationOption(args, approvalValidity), password: givenPassword(args, io) }) as { released?: boolean; command?: { state?: string } };
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${id} approved; ${answer.released === true ? 'released (queued for the device)' : `still ${shownText(String(answer.command?.state ?? 'pending'))}`}\n`);
    return 0;
  },
};

export const rejectCommand: Command = {
  name: 'reject',
  summary: 'Reject a command waiting for approvals (signed); it ends rejected',
  usage: 'ID --reason R [--password-stdin] [--json]',
  optionHelp: [['--reason R', 'Why (audited)'], passwordStdinHelp, ['--json', 'Print the answer as JSON']],
  options: { reason: { type: 'string' }, 'password-stdin': { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'command id');
    const reason = requireOption(args, 'reason');
    const answer = await decide(io, await apiClient(io), id, 'reject', { validForMs: 0, reason, password: givenPassword(args, io) });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${id} rejected\n`);
    return 0;
  },
};

export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'Cancel a command still waiting for approvals (its requester or an admin); it ends rejected',
  usage: 'ID [--reason R] [--json]',
  optionHelp: [['--reason R', 'Why (audited)'], ['--json', 'Print the answer as JSON']],
  options: { reason: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const id = onePositional(args.positionals, 'command id');
    const reason = args.values.reason;
    if (reason !== undefined && (typeof reason !== 'string' || reason.length === 0)) throw new SdcError('CLI_USAGE', '--reason must not be empty');
    const answer = await (await apiClient(io)).post<{ command?: { state?: string } }>(`/v1/commands/${segment(id)}/cancel`, reason === undefined ? {} : { reason });
    io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${id} cancelled; ${shownText(String(answer.command?.state ?? 'rejected'))}\n`);
    return 0;
  },
};

const list: Command = {
  name: 'list',
  summary: 'Commands waiting for approvals, newest first (GET /v1/approvals; approver or admin)',
  usage: '[--limit N] [--json]',
  optionHelp: [['--limit N', 'At most N commands (default 100)'], ['--json', 'One JSON array']],
  options: { limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const limit = args.values.limit === undefined ? 100 : Number(args.values.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 50_000) throw new SdcError('CLI_USAGE', '--limit must be an integer from 1 to 50000');
    const items = await getAllPages<PendingCommandView>(await apiClient(io), '/v1/approvals', limit);
    if (args.values.json === true) io.stdout(JSON.stringify(items) + '\n');
    else for (const command of items) io.stdout(describeCommand(command) + '\n');
    return 0;
  },
};

export const approvalsCommands: CommandGroup = { name: 'approvals', summary: 'Commands waiting for approvals (sdc command approve|reject ID to decide)', commands: [list] };
