import { SdcError } from '../core/errors/index.js';
import { auditWindowMsDeployment } from '../server/control-plane/audit-drain-soon.js';
import type { ParsedCommandArgs } from './command.js';
import { flagOrEnvText } from './flag-or-env.js';

/**
 * `--command-audit-window-ms N|off` (docs/audit.md, "Atomicity: the outbox"): how long a command's
 * audit inputs wait in the outbox to share one drain; `off` has each command commit await its own
 * drain. From the flag, else `$SDC_COMMAND_AUDIT_WINDOW_MS`, else the deployment's default.
 */
export const commandAuditWindowFlag = { flag: 'command-audit-window-ms', env: 'SDC_COMMAND_AUDIT_WINDOW_MS' } as const;

/** Past a few seconds a window would only stand in for the periodic drain (5 s). */
export const commandAuditWindowMsMax = 5_000;

export interface CommandAuditWindowTuning {
  /** null: each command commit awaits its drain. */
  commandAuditWindowMs?: number | null;
}

export function commandAuditWindowOptions(args: ParsedCommandArgs, env: Readonly<Record<string, string | undefined>>): CommandAuditWindowTuning {
  const { flag, env: variable } = commandAuditWindowFlag;
  const given = flagOrEnvText(args, env, flag, variable);
  if (given === undefined) return {};
  const text = given.text.trim();
  if (text === 'off') return { commandAuditWindowMs: null };
  const ms = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms <= commandAuditWindowMsMax)) {
    throw new SdcError('CLI_USAGE', `${given.name} must be off or whole milliseconds from 0 to ${commandAuditWindowMsMax.toLocaleString('en-US')}, got '${given.text}'`);
  }
  return { commandAuditWindowMs: ms };
}

export const commandAuditWindowHelp: Array<[string, string]> = [
  [`--${commandAuditWindowFlag.flag} N|off`, `How long a command's audit inputs wait in the outbox to share one chain drain (default ${auditWindowMsDeployment}; or $${commandAuditWindowFlag.env}); off: each command commit awaits its own drain; API reads of the audit log drain first either way`],
];

export const commandAuditWindowParseOptions = {
  [commandAuditWindowFlag.flag]: { type: 'string' },
} as const;
