import type { ParsedCommandArgs } from './command.js';

/**
 * A setting's text from its flag, else from its environment variable (a container sets these
 * without changing its command; an empty variable counts as unset), with the name to quote in a
 * refusal; undefined when neither is given, so the control plane's default holds.
 */
export function flagOrEnvText(
  args: ParsedCommandArgs, env: Readonly<Record<string, string | undefined>>, flag: string, variable: string,
): { name: string; text: string } | undefined {
  const raw = args.values[flag];
  if (typeof raw === 'string') return { name: `--${flag}`, text: raw };
  const fromEnv = env[variable];
  return fromEnv === undefined || fromEnv === '' ? undefined : { name: `$${variable}`, text: fromEnv };
}
