import { SdcError } from '../../core/errors/index.js';
import { roles, UserDirectory } from '../../server/control-plane/users.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { integerOption, passwordEnv, readPasswordOption, requireOption, stringOption, type CliIo, type Command, type CommandGroup, type ParsedCommandArgs } from '../command.js';
import { requireInitialisedDataDir } from '../data-dir.js';
import { apiClient, getAllPages, onePositional, segment } from '../api-client.js';
import { readPasswordFile, StdinLines } from '../password-input.js';
import { mysqlPasswordFileHelp, mysqlPasswordFileOptions, mysqlUrlOption } from '../mysql-password.js';
import { shownValue } from '../shown-text.js';


/** The password from stdin (first line) or SDC_PASSWORD; never from argv, where other users can read it. */
const add: Command = {
  name: 'add',
  summary: 'Add an operator to the control-plane database (bootstraps the first admin)',
  usage: '--dir D --name N --role R (--password-stdin | SDC_PASSWORD=...) [--mysql URL]',
  optionHelp: [
    ['--dir D', 'Data directory; the database is D/db/sdc.sqlite (default ./data)'],
    ['--name N', 'User name: 1-128 characters of [A-Za-z0-9_.@-]'],
    ['--role R', `One of ${roles.join(', ')}`],
    ['--password-stdin', `Read the password from the first line of stdin (otherwise from ${passwordEnv})`],
    ['--mysql URL', 'Use this MySQL database instead of the embedded file'],
    mysqlPasswordFileHelp,
  ],
  options: { dir: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, 'password-stdin': { type: 'boolean' }, mysql: { type: 'string' }, ...mysqlPasswordFileOptions },
  async run(args, io) {
    const name = requireOption(args, 'name');
    const role = requireOption(args, 'role');
    const password = await readPasswordOption(args, io);
    const mysqlUrl = await mysqlUrlOption(args, io);
    const dataDir = stringOption(args, 'dir', './data');
    // The embedded database lives in the data directory; MySQL does not need one.
    if (typeof mysqlUrl !== 'string') await requireInitialisedDataDir(dataDir);
    // Imported here, not at the top: the SQL drivers and migrations would cost every start of the CLI (`sdc --help`).
    const { openControlPlaneDatabase } = await import('../../server/control-plane/database.js');
    const db = await openControlPlaneDatabase({ dataDir, clock: systemClock, ...(typeof mysqlUrl === 'string' ? { mysqlUrl } : {}) });
    try {
      const user = await new UserDirectory({ db, random: systemRandom }).add({ name, role, password, nowMs: systemClock.nowMs() });
      io.stdout(`added ${shownValue(user.name)} (${shownValue(user.role)})\n`);
      return 0;
    } catch (error) {
      // The directory's refusals are API codes; at the command line they are the user's input.
      if (SdcError.is(error, 'API_VALIDATION') || SdcError.is(error, 'API_USER_EXISTS')) throw new SdcError('CLI_INPUT', error.message);
      throw error;
    } finally {
      await db.close();
    }
  },
};

interface UserView { id: string; name: string; role: string; created_at_ms: number }


function printUser(io: CliIo, json: boolean, user: UserView, done: string): void {
  io.stdout(json ? JSON.stringify(user) + '\n' : `${done} ${shownValue(user.name)} (${shownValue(user.role)})\n`);
}

const list: Command = {
  name: 'list',
  summary: 'Operator accounts by name (GET /v1/users, admin), every page',
  usage: '[--limit N] [--json]',
  optionHelp: [['--limit N', 'Users at most (default 1000)'], ['--json', 'Print { items: [...] } as JSON']],
  options: { limit: { type: 'string' }, json: { type: 'boolean' } },
  async run(args, io) {
    const limit = integerOption(args, 'limit', 1_000, 1, 50_000);
    const items = await getAllPages<UserView>(await apiClient(io), '/v1/users', limit);
    if (args.values.json === true) {
      io.stdout(JSON.stringify({ items }) + '\n');
      return 0;
    }
    io.stdout('name\trole\tcreated\n');
    for (const u of items) io.stdout(`${shownValue(u.name)}\t${shownValue(u.role)}\t${new Date(u.created_at_ms).toISOString()}\n`);
    return 0;
  },
};

const remove: Command = {
  name: 'remove',
  summary: 'Remove an operator account (DELETE /v1/users/NAME, admin; never the last admin)',
  usage: 'NAME [--json]',
  optionHelp: [['--json', 'Print the removed user as JSON']],
  options: { json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const name = onePositional(args.positionals, 'user name');
    printUser(io, args.values.json === true, await (await apiClient(io)).delete<UserView>(`/v1/users/${segment(name)}`), 'removed');
    return 0;
  },
};

const setRole: Command = {
  name: 'set-role',
  summary: 'Give an operator another role (PUT /v1/users/NAME/role, admin; never the last admin)',
  usage: 'NAME --role R [--json]',
  optionHelp: [['--role R', `One of ${roles.join(', ')}`], ['--json', 'Print the user as JSON']],
  options: { role: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    const name = onePositional(args.positionals, 'user name');
    const role = requireOption(args, 'role');
    if (!(roles as readonly string[]).includes(role)) throw new SdcError('CLI_USAGE', `--role must be one of ${roles.join(', ')}, got '${role}'`);
    printUser(io, args.values.json === true, await (await apiClient(io)).put<UserView>(`/v1/users/${segment(name)}/role`, { role }), 'role set:');
    return 0;
  },
};

/**
 * The passwords of `sdc user passwd`, never from argv. Each from its file when given; otherwise,
 * with --password-stdin, from the lines of stdin in order (the current one first, when it is
 * needed); otherwise asked for on the terminal (the new one twice).
 */
async function passwdInputs(args: ParsedCommandArgs, io: CliIo, needsCurrent: boolean): Promise<{ password: string; current?: string }> {
  const fromStdin = args.values['password-stdin'] === true;
  const stdin = new StdinLines(io);
  const newFile = args.values['password-file'];
  const currentFile = args.values['current-password-file'];
  const prompt = io.promptSecret;
  const ask = async (what: string, question: string): Promise<string> => {
    if (fromStdin) return stdin.next(what);
    if (prompt === undefined) throw new SdcError('CLI_USAGE', `give the ${what} with --password-stdin or a file (--password-file, --current-password-file): there is no terminal to ask on`);
    return prompt(question);
  };
  const current = !needsCurrent ? undefined
    : typeof currentFile === 'string' ? await readPasswordFile(currentFile, '--current-password-file') : await ask('current password', 'Current password: ');
  let password: string;
  if (typeof newFile === 'string') {
    password = await readPasswordFile(newFile, '--password-file');
  } else {
    password = await ask('new password', 'New password: ');
    // Typed blind: asked twice, so a typo does not lock the user out.
    if (!fromStdin && (await prompt!('New password again: ')) !== password) throw new SdcError('CLI_INPUT', 'the two new passwords differ');
  }
  return current === undefined ? { password } : { password, current };
}

const passwd: Command = {
  name: 'passwd',
  summary: "Set a password (PUT /v1/users/NAME/password): your own (with the current one), or anyone's as admin",
  usage: '[NAME] [--password-stdin | --password-file F] [--current-password-file F] [--json]',
  optionHelp: [
    ['NAME', 'Whose password (default: the logged-in user, who must give the current password too)'],
    ['--password-stdin', 'Read the passwords from stdin, one per line: the current one first (your own only), then the new one'],
    ['--password-file F', 'Read the new password from the first line of F'],
    ['--current-password-file F', 'Read your current password from the first line of F'],
    ['--json', 'Print the user as JSON'],
  ],
  options: { 'password-stdin': { type: 'boolean' }, 'password-file': { type: 'string' }, 'current-password-file': { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(args, io) {
    if (args.positionals.length > 1) throw new SdcError('CLI_USAGE', 'give at most one user name');
    const api = await apiClient(io);
    const name = args.positionals[0] ?? api.login.name;
    const { password, current } = await passwdInputs(args, io, name === api.login.name);
    const body = current === undefined ? { password } : { password, current_password: current };
    printUser(io, args.values.json === true, await api.put<UserView>(`/v1/users/${segment(name)}/password`, body), 'password set for');
    return 0;
  },
};

export const userCommands: CommandGroup = {
  name: 'user',
  summary: 'Operator accounts: add offline (--dir), or list, remove, set-role and passwd through a running control plane (sdc login first)',
  commands: [add, list, remove, setRole, passwd],
};
