import { SdcError } from '../../core/errors/index.js';
import { openControlPlaneDatabase } from '../../server/control-plane/database.js';
import { roles, UserDirectory } from '../../server/control-plane/users.js';
import { systemClock, systemRandom } from '../../runtime/system.js';
import { passwordEnv, readPasswordOption, requireOption, stringOption, type Command, type CommandGroup } from '../command.js';
import { requireInitialisedDataDir } from '../data-dir.js';


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
  ],
  options: { dir: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, 'password-stdin': { type: 'boolean' }, mysql: { type: 'string' } },
  async run(args, io) {
    const name = requireOption(args, 'name');
    const role = requireOption(args, 'role');
    const password = await readPasswordOption(args, io);
    const mysqlUrl = args.values['mysql'];
    const dataDir = stringOption(args, 'dir', './data');
    // The embedded database lives in the data directory; MySQL does not need one.
    if (typeof mysqlUrl !== 'string') await requireInitialisedDataDir(dataDir);
    const db = await openControlPlaneDatabase({ dataDir, clock: systemClock, ...(typeof mysqlUrl === 'string' ? { mysqlUrl } : {}) });
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
