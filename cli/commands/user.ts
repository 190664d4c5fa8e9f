import { SdcError } from '../../core/errors/index.js';
import { openControlPlaneDatabase } from '../../core/control-plane/database.js';
import { roles, UserDirectory } from '../../core/control-plane/users.js';
import { systemClock, systemRandom } from '../../core/runtime/system.js';
import { requireOption, stringOption, type CliIo, type Command, type CommandGroup, type ParsedCommandArgs } from '../command.js';

export const passwordEnv = 'SDC_PASSWORD';

/** The password from stdin (first line) or SDC_PASSWORD; never from argv, where other users can read it. */
async function readPassword(args: ParsedCommandArgs, io: CliIo): Promise<string> {
  if (args.values['password-stdin'] === true) {
    const text = await io.readStdin();
    const line = text.split(/\r?\n/)[0] ?? '';
    if (line.length === 0) throw new SdcError('CLI_INPUT', 'no password on stdin');
    return line;
  }
  const fromEnv = io.env[passwordEnv];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  throw new SdcError('CLI_USAGE', `give the password with --password-stdin or the ${passwordEnv} environment variable`);
}

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
  ],
  options: { dir: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, 'password-stdin': { type: 'boolean' }, mysql: { type: 'string' } },
  async run(args, io) {
    const name = requireOption(args, 'name');
    const role = requireOption(args, 'role');
    const password = await readPassword(args, io);
    const mysqlUrl = args.values['mysql'];
    const db = await openControlPlaneDatabase({
      dataDir: stringOption(args, 'dir', './data'), clock: systemClock, ...(typeof mysqlUrl === 'string' ? { mysqlUrl } : {}),
    });
    try {
      const user = await new UserDirectory({ db, random: systemRandom }).add({ name, role, password, nowMs: systemClock.nowMs() });
      io.stdout(`added ${user.name} (${user.role})\n`);
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

export const userCommands: CommandGroup = { name: 'user', summary: 'Control-plane operators', commands: [add] };
