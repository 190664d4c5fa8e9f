import { readFile } from 'node:fs/promises';
import { SdcError } from '../../core/errors/index.js';
import { parsePolicy, type Policy } from '../../core/protocol/policy.js';
import { integerOption, requireOption, type CliIo, type Command, type CommandGroup } from '../command.js';
import { apiClient } from '../api-client.js';
import { quotedText, shownValue } from '../shown-text.js';

interface PolicyView {
  revision: number;
  source: 'stored' | 'builtin';
  document: { revision?: number; rules: Array<{ id: string; effect: string; description?: string }> };
  document_sha256: string;
  created_by: string | null;
  created_at_ms: number | null;
}

/** The policy file, parsed here as the server will parse it: a mistake is named with its field's path before any round trip. */
async function readPolicyFile(file: string): Promise<{ raw: Record<string, unknown>; policy: Policy }> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new SdcError('CLI_INPUT', `--file ${file} cannot be read`, { path: file }, { cause: error });
  });
  try {
    const policy = parsePolicy(text);
    return { raw: JSON.parse(text) as Record<string, unknown>, policy };
  } catch (error) {
    if (SdcError.is(error)) throw new SdcError(error.code, `${file}: ${error.message}`, error.details, { cause: error });
    throw error;
  }
}

function printPolicy(io: CliIo, json: boolean, view: PolicyView): void {
  if (json) {
    io.stdout(JSON.stringify(view) + '\n');
    return;
  }
  const by = view.created_by === null ? 'built-in default' : `${shownValue(view.created_by)} at ${new Date(view.created_at_ms ?? 0).toISOString()}`;
  io.stdout(`revision ${shownValue(view.revision)} (${by}), ${view.document.rules.length} rules, sha256 ${shownValue(view.document_sha256)}\n`);
  // Another admin wrote the rules: a description is free text.
  for (const rule of view.document.rules) io.stdout(`  ${shownValue(rule.effect)}\t${shownValue(rule.id)}${rule.description === undefined ? '' : `\t${quotedText(rule.description)}`}\n`);
}

const get: Command = {
  name: 'get',
  summary: 'The policy in force with its revision (GET /v1/policy); --document prints the document alone, ready to edit and set',
  usage: '[--document] [--json]',
  optionHelp: [['--document', 'Print only the policy document (with its revision field), for `sdc policy set --file`'], ['--json', 'Print the whole answer as JSON']],
  options: { document: { type: 'boolean' }, json: { type: 'boolean' } },
  async run(args, io) {
    const view = await (await apiClient(io)).get<PolicyView>('/v1/policy');
    if (args.values.document === true) io.stdout(JSON.stringify(view.document, null, 2) + '\n');
    else printPolicy(io, args.values.json === true, view);
    return 0;
  },
};

const set: Command = {
  name: 'set',
  summary: 'Replace the policy (PUT /v1/policy, admin): the file is checked first; the revision replaced is --revision, else the file\'s revision field, else the current one',
  usage: '--file F [--revision N] [--json]',
  optionHelp: [
    ['--file F', 'The policy document (JSON, docs/policy.md)'],
    ['--revision N', 'The revision this replaces; refused (POLICY_REVISION_STALE) if another change came first'],
    ['--json', 'Print the stored revision as JSON'],
  ],
  options: { file: { type: 'string' }, revision: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const { raw } = await readPolicyFile(requireOption(args, 'file'));
    const api = await apiClient(io);
    // A file saved by `sdc policy get --document` carries the revision it was edited from, which
    // is what protects a concurrent change; without one, the current revision is read and used.
    const revision = args.values.revision !== undefined
      ? integerOption(args, 'revision', 0, 0, Number.MAX_SAFE_INTEGER)
      : typeof raw['revision'] === 'number' ? raw['revision'] : (await api.get<PolicyView>('/v1/policy')).revision;
    const stored = await api.put<PolicyView>('/v1/policy', { ...raw, revision });
    if (args.values.json === true) io.stdout(JSON.stringify(stored) + '\n');
    else io.stdout(`policy revision ${stored.revision} stored (replaced ${revision}), in force now\n`);
    return 0;
  },
};

const check: Command = {
  name: 'check',
  summary: 'Check a policy file locally (the server\'s parser; nothing is evaluated or sent)',
  usage: '--file F [--json]',
  optionHelp: [['--file F', 'The policy document'], ['--json', 'Print { ok, rules, rule_ids } or the refusal as JSON']],
  options: { file: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const file = requireOption(args, 'file');
    let policy: Policy;
    try {
      ({ policy } = await readPolicyFile(file));
    } catch (error) {
      if (args.values.json !== true || !SdcError.is(error) || error.code === 'CLI_INPUT') throw error;
      const path = error.details['path'];
      io.stdout(JSON.stringify({ ok: false, code: error.code, message: error.message, ...(typeof path === 'string' ? { path } : {}) }) + '\n');
      return 1;
    }
    const ruleIds = policy.rules.map((rule) => rule.id);
    if (args.values.json === true) io.stdout(JSON.stringify({ ok: true, rules: ruleIds.length, rule_ids: ruleIds }) + '\n');
    else io.stdout(`${file}: valid, ${ruleIds.length} rules (${ruleIds.join(', ')})\n`);
    return 0;
  },
};

export const policyCommands: CommandGroup = {
  name: 'policy', summary: 'The stored policy, through a running control plane (sdc login first); check works offline', commands: [get, set, check],
};
