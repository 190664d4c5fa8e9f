import { SdcError } from '../../core/errors/index.js';
import { apiClient, onePositional, segment } from '../api-client.js';
import { integerOption, requireOption, type CliIo, type Command, type CommandGroup, type ParsedCommandArgs } from '../command.js';
import { durationOption, durationOptions } from '../duration-option.js';
import { approvalValidity, decideRollout, decideRolloutResume, givenPassword, passwordStdinHelp } from './approvals.js';
import { shownValue } from '../shown-text.js';

/**
 * `sdc rollout`: rollouts of published releases through a running control plane (sdc login
 * first; docs/ota.md, "Rollouts"). `start` names the fleet and its waves; pause, resume and
 * abort need an operator, `abort --emergency` an admin; `status` shows each wave and device;
 * `approve` and `reject` are an approver's signed decision on a rollout waiting for approvals
 * (docs/ota.md, "Rollouts that need approvals"), as `sdc command approve|reject` on a command.
 */

interface RolloutView {
  id: string; release_id: string; status: string; pause_reason: string | null; wave_index: number;
  waves: Array<{ devices: string[]; size: number; started: number; succeeded: number; failed: number; terminal: number }>;
  executions: Array<{ id: string; device_id: string; wave: number; state: string; last_error_code: string | null }>;
  approval?: null | { count: number; roles: string[]; expires_at_ms: number; decisions: Array<{ approver: string; decision: string }>; outcome: null | { state: string; code?: string } };
  resume_request?: null | {
    id: string; waiting: boolean; count: number; roles: string[]; expires_at_ms: number; subject: { requested_by: string; reason: string };
    decisions: Array<{ approver: string; decision: string }>; outcome: null | { state: string; code?: string };
  };
}

const jsonOption = { json: { type: 'boolean' } } as const;
const jsonHelp = ['--json', 'Print the rollout as JSON'] as const;

function print(io: CliIo, json: boolean, rollout: RolloutView): void {
  if (json) {
    io.stdout(JSON.stringify(rollout) + '\n');
    return;
  }
  const reason = rollout.pause_reason === null ? '' : ` (${shownValue(rollout.pause_reason)})`;
  io.stdout(`${shownValue(rollout.id)}\trelease ${shownValue(rollout.release_id)}\t${shownValue(rollout.status)}${reason}\twave ${rollout.wave_index + 1}/${rollout.waves.length}\n`);
  const approval = rollout.approval;
  if (approval !== undefined && approval !== null) {
    const have = approval.decisions.filter((d) => d.decision === 'approve').map((d) => shownValue(d.approver));
    const ended = approval.outcome === null ? `until ${new Date(approval.expires_at_ms).toISOString()}` : `${shownValue(approval.outcome.state)}${approval.outcome.code === undefined ? '' : ` ${shownValue(approval.outcome.code)}`}`;
    io.stdout(`  approvals: ${have.length}/${shownValue(approval.count)} from ${approval.roles.map(shownValue).join('|')}${have.length > 0 ? ` (${have.join(', ')})` : ''}; ${ended}\n`);
  }
  const resume = rollout.resume_request;
  if (resume !== undefined && resume !== null) {
    const have = resume.decisions.filter((d) => d.decision === 'approve').map((d) => shownValue(d.approver));
    const ended = resume.outcome === null ? `waiting until ${new Date(resume.expires_at_ms).toISOString()}` : `${shownValue(resume.outcome.state)}${resume.outcome.code === undefined ? '' : ` ${shownValue(resume.outcome.code)}`}`;
    io.stdout(`  resume request ${shownValue(resume.id)} by ${shownValue(resume.subject.requested_by)}: ${have.length}/${shownValue(resume.count)} from ${resume.roles.map(shownValue).join('|')}${have.length > 0 ? ` (${have.join(', ')})` : ''}; ${ended}\n`);
  }
  rollout.waves.forEach((wave, index) => {
    io.stdout(`  wave ${index + 1}: ${shownValue(wave.size)} devices, ${shownValue(wave.started)} notified, ${shownValue(wave.succeeded)} succeeded, ${shownValue(wave.failed)} failed, ${shownValue(wave.terminal)} finished\n`);
  });
  for (const execution of rollout.executions) {
    io.stdout(`    ${shownValue(execution.device_id)}\twave ${execution.wave + 1}\t${shownValue(execution.state)}${execution.last_error_code === null ? '' : `\t${shownValue(execution.last_error_code)}`}\n`);
  }
}

/** `--wave` values: `PERCENT%` or a comma-separated device list, each wave with the same thresholds. */
function wavesOf(args: ParsedCommandArgs): unknown[] {
  const waves = (args.values.wave as string[] | undefined) ?? [];
  if (waves.length === 0) throw new SdcError('CLI_USAGE', 'give at least one --wave (PERCENT% or DEVICE,DEVICE,...)');
  const thresholds = {
    success_threshold: {
      succeeded_min: integerOption(args, 'succeeded-min', 0, 0, 1_000_000), succeeded_percent_min: integerOption(args, 'succeeded-percent-min', 0, 0, 100),
      soak_ms: integerOption(args, 'soak-ms', 0, 0, 7 * 86_400_000),
    },
    error_threshold: { executed_min: integerOption(args, 'executed-min', 1, 0, 1_000_000), failed_percent_max: integerOption(args, 'failed-percent-max', 0, 0, 100) },
  };
  return waves.map((wave) => {
    const percent = /^(\d{1,3})%$/.exec(wave);
    if (percent !== null) return { percent: Number(percent[1]), ...thresholds };
    return { device_ids: wave.split(',').filter((id) => id.length > 0), ...thresholds };
  });
}

const start: Command = {
  name: 'start',
  summary: 'Start a rollout (POST /v1/rollouts): a published release to devices in waves',
  usage: '--release ID --platform P --device ID [--device ID...] --wave W [--wave W...] [--rate N] [--failed-percent-max N] [--executed-min N] [--succeeded-percent-min N] [--succeeded-min N] [--soak-ms N] [--json]',
  optionHelp: [
    ['--release ID', 'A published release'], ['--platform P', 'The platform the director names (one of the release\'s)'],
    ['--device ID', 'A device of the rollout (repeat); every one ends up in exactly one wave'],
    ['--wave W', 'A wave, in order: PERCENT% of the devices, or DEVICE,DEVICE,... (repeat)'],
    ['--rate N', 'At most N devices notified per minute (default 60)'],
    ['--failed-percent-max N', 'Each wave pauses the rollout above N % failed (default 0)'], ['--executed-min N', '... once at least N devices of it finished (default 1)'],
    ['--succeeded-percent-min N', 'A wave completes with at least N % succeeded (default 0)'], ['--succeeded-min N', '... and at least N devices (default 0)'],
    ['--soak-ms N', 'Time after a wave ends before the next starts (default 0)'],
    ['--approval-window D', 'When the policy requires approvals: how long the rollout waits for them, like 4h (default 24h, at most 7d)'], jsonHelp,
  ],
  options: {
    'approval-window': { type: 'string' },
    release: { type: 'string' }, platform: { type: 'string' }, device: { type: 'string', multiple: true }, wave: { type: 'string', multiple: true },
    rate: { type: 'string' }, 'failed-percent-max': { type: 'string' }, 'executed-min': { type: 'string' }, 'succeeded-percent-min': { type: 'string' },
    'succeeded-min': { type: 'string' }, 'soak-ms': { type: 'string' }, ...jsonOption,
  },
  async run(args, io) {
    const devices = (args.values.device as string[] | undefined) ?? [];
    if (devices.length === 0) throw new SdcError('CLI_USAGE', 'give at least one --device');
    const body = {
      release_id: requireOption(args, 'release'), platform: requireOption(args, 'platform'), device_ids: devices,
      waves: wavesOf(args), devices_per_minute_max: integerOption(args, 'rate', 60, 1, 100_000),
      ...(args.values['approval-window'] === undefined ? {} : { approval_window_ms: durationOption(args, approvalWindow) }),
    };
    print(io, args.values.json === true, await (await apiClient(io)).post<RolloutView>('/v1/rollouts', body));
    return 0;
  },
};

function action(name: 'pause' | 'resume' | 'abort', summary: string): Command {
  return {
    name, summary, usage: `ROLLOUT_ID${name === 'abort' ? ' [--emergency]' : ''} [--json]`,
    optionHelp: name === 'abort' ? [['--emergency', 'Also cancel every execution in flight (rolled back after commit); needs an admin'], jsonHelp] : [jsonHelp],
    options: name === 'abort' ? { emergency: { type: 'boolean' }, ...jsonOption } : { ...jsonOption },
    allowPositionals: true,
    async run(args, io) {
      const id = segment(onePositional(args.positionals, 'rollout id'));
      const path = name === 'abort' && args.values.emergency === true ? 'emergency-abort' : name;
      print(io, args.values.json === true, await (await apiClient(io)).post<RolloutView>(`/v1/rollouts/${id}/${path}`, {}));
      return 0;
    },
  };
}

const approvalWindow = { name: 'approval-window', fallbackMs: 24 * 3_600_000, minMs: 60_000, maxMs: 7 * 86_400_000 } as const;

function decision(name: 'approve' | 'reject'): Command {
  return {
    name,
    summary: name === 'approve'
      ? 'Approve a rollout waiting for approvals, signed with your approval key over its id and exact content (shown first); the last approval needed starts it'
      : 'Reject a rollout waiting for approvals (signed, with a reason); it ends rejected, nothing sent',
    usage: name === 'approve' ? 'ROLLOUT_ID [--valid-for 1h] [--password-stdin] [--json]' : 'ROLLOUT_ID --reason R [--password-stdin] [--json]',
    optionHelp: name === 'approve'
      ? [['--valid-for D', 'How long your approval counts, like 1h (default: until the rollout\'s approval window closes)'], passwordStdinHelp, ['--json', 'Print the answer as JSON']]
      : [['--reason R', 'Why (signed and audited)'], passwordStdinHelp, ['--json', 'Print the answer as JSON']],
    options: name === 'approve'
      ? { ...durationOptions(approvalValidity), 'password-stdin': { type: 'boolean' }, ...jsonOption }
      : { reason: { type: 'string' }, 'password-stdin': { type: 'boolean' }, ...jsonOption },
    allowPositionals: true,
    async run(args, io) {
      const id = onePositional(args.positionals, 'rollout id');
      const options = name === 'approve'
        ? { validForMs: durationOption(args, approvalValidity), password: givenPassword(args, io) }
        : { validForMs: 0, reason: requireOption(args, 'reason'), password: givenPassword(args, io) };
      const answer = await decideRollout(io, await apiClient(io), id, name, options) as { started?: boolean; rollout?: { status?: string } };
      const outcome = answer.started === true ? 'started (its first devices notified)' : `now ${shownValue(answer.rollout?.status ?? 'pending_approval')}`;
      io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${id} ${name === 'approve' ? 'approved' : 'rejected'}; ${outcome}\n`);
      return 0;
    },
  };
}

const resumeWindow = { name: 'approval-window', fallbackMs: 24 * 3_600_000, minMs: 60_000, maxMs: 24 * 3_600_000 } as const;

/** `sdc rollout resume-request ID --reason R`: asks approvers to resume a rollout past its safety stop (decision 0019). */
const resumeRequest: Command = {
  name: 'resume-request',
  summary: 'Ask approvers to resume a rollout paused at a safety stop, when the policy lets you resume it only with approvals; the request binds this stop',
  usage: 'ROLLOUT_ID --reason R [--approval-window 24h] [--json]',
  optionHelp: [['--reason R', 'Why the stop should be waived (signed by the approvers, audited)'], ['--approval-window D', 'How long approvals may come, like 2h (default and at most 24h)'], jsonHelp],
  options: { reason: { type: 'string' }, ...durationOptions(resumeWindow), ...jsonOption },
  allowPositionals: true,
  async run(args, io) {
    const id = segment(onePositional(args.positionals, 'rollout id'));
    const body = { reason: requireOption(args, 'reason'), approval_window_ms: durationOption(args, resumeWindow) };
    print(io, args.values.json === true, await (await apiClient(io)).post<RolloutView>(`/v1/rollouts/${id}/resume-request`, body));
    return 0;
  },
};

function resumeDecision(name: 'resume-approve' | 'resume-reject'): Command {
  const decision = name === 'resume-approve' ? 'approve' : 'reject';
  return {
    name,
    summary: decision === 'approve'
      ? 'Approve a rollout\'s waiting resume request, signed with your approval key over the request and the stop it waives (shown first); the last approval needed resumes it'
      : 'Reject a rollout\'s waiting resume request (signed, with a reason); the rollout stays paused',
    usage: decision === 'approve' ? 'ROLLOUT_ID [--valid-for 1h] [--password-stdin] [--json]' : 'ROLLOUT_ID --reason R [--password-stdin] [--json]',
    optionHelp: decision === 'approve'
      ? [['--valid-for D', 'How long your approval counts, like 1h (default: until the request\'s window closes)'], passwordStdinHelp, ['--json', 'Print the answer as JSON']]
      : [['--reason R', 'Why (signed and audited)'], passwordStdinHelp, ['--json', 'Print the answer as JSON']],
    options: decision === 'approve'
      ? { ...durationOptions(approvalValidity), 'password-stdin': { type: 'boolean' }, ...jsonOption }
      : { reason: { type: 'string' }, 'password-stdin': { type: 'boolean' }, ...jsonOption },
    allowPositionals: true,
    async run(args, io) {
      const id = onePositional(args.positionals, 'rollout id');
      const options = decision === 'approve'
        ? { validForMs: durationOption(args, approvalValidity), password: givenPassword(args, io) }
        : { validForMs: 0, reason: requireOption(args, 'reason'), password: givenPassword(args, io) };
      const answer = await decideRolloutResume(io, await apiClient(io), id, decision, options) as { resumed?: boolean; rollout?: { status?: string } };
      const outcome = answer.resumed === true ? 'resumed' : `now ${shownValue(answer.rollout?.status ?? 'paused')}`;
      io.stdout(args.values.json === true ? JSON.stringify(answer) + '\n' : `${id} resume ${decision === 'approve' ? 'approved' : 'rejected'}; ${outcome}\n`);
      return 0;
    },
  };
}

const status: Command = {
  name: 'status',
  summary: 'A rollout\'s status, waves and every device\'s execution state (GET /v1/rollouts/ID), or the list without an id',
  usage: '[ROLLOUT_ID] [--json]',
  optionHelp: [jsonHelp],
  options: { ...jsonOption },
  allowPositionals: true,
  async run(args, io) {
    const client = await apiClient(io);
    if (args.positionals.length === 0) {
      const { items } = await client.get<{ items: RolloutView[] }>('/v1/rollouts');
      for (const rollout of items) print(io, args.values.json === true, rollout);
      return 0;
    }
    print(io, args.values.json === true, await client.get<RolloutView>(`/v1/rollouts/${segment(onePositional(args.positionals, 'rollout id'))}`));
    return 0;
  },
};

export const rolloutCommands: CommandGroup = {
  name: 'rollout',
  summary: 'OTA rollouts, through a running control plane (sdc login first): start, pause, resume, abort, status, approve, reject, and resume requests past a safety stop',
  commands: [
    start,
    action('pause', 'Pause a running rollout: nobody else is notified; executions in flight go on'),
    action('resume', 'Resume a paused rollout (the failures seen so far in its wave are accepted)'),
    action('abort', 'Abort a rollout: nobody else is notified, queued executions are canceled; one waiting for approvals ends aborted'),
    status,
    decision('approve'),
    decision('reject'),
    resumeRequest,
    resumeDecision('resume-approve'),
    resumeDecision('resume-reject'),
  ],
};
