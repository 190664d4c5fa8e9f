import { SdcError } from '../../core/errors/index.js';
import type { CliIo, Command, ParsedCommandArgs } from '../command.js';
import { escapedUnshown } from '../shown-text.js';

/**
 * `sdc tuf-client`: the agent's TUF client behind the command line of the TUF conformance suite
 * (tuf-conformance CLIENT-CLI.md), so the suite can run it as a client under test:
 *
 *   sdc tuf-client --metadata-dir DIR init TRUSTED_ROOT
 *   sdc tuf-client --metadata-dir DIR --metadata-url URL refresh
 *   sdc tuf-client --metadata-dir DIR --metadata-url URL --target-name NAME --target-base-url URL --target-dir DIR download
 *
 * The protocol allows two exit codes: 0 when the action succeeded fully, 1 for any failure, a
 * usage mistake included (hence usageExitCode). Every failure is caught here and printed as one
 * line with its code; nothing escapes as a crash. "Now" is the system clock at each run, which
 * the suite moves with faketime.
 */

/** The trusted root given to init is read whole; the same bound the workflow puts on a downloaded root. */
const trustedRootBytesMax = 512_000;

const actions = ['init', 'refresh', 'download'] as const;
type Action = typeof actions[number];

export const tufClientCommand: Command = {
  name: 'tuf-client',
  summary: 'TUF client (conformance-suite protocol): init with a trusted root, refresh metadata, download a target',
  usage: '--metadata-dir DIR [--metadata-url URL] [--target-name NAME --target-base-url URL --target-dir DIR] init TRUSTED_ROOT | refresh | download',
  optionHelp: [
    ['--metadata-dir DIR', 'Where the trusted metadata lives: root.json, timestamp.json, snapshot.json, targets.json, one file per delegated role'],
    ['--metadata-url URL', 'Base URL of the repository metadata (refresh, download)'],
    ['--target-name NAME', 'TUF target path to download (download)'],
    ['--target-base-url URL', 'Base URL of the repository targets (download)'],
    ['--target-dir DIR', 'Where verified targets are stored, one file per target path, URL-quoted (download)'],
    ['init TRUSTED_ROOT', 'Copy the trusted root file into the metadata directory; no request is made'],
    ['refresh', 'Update the top-level metadata by the TUF client workflow'],
    ['download', 'Refresh, find the target through the delegations, download and verify it (kept if already there and valid)'],
    ['', 'Exit status: 0 on success, 1 on any failure'],
  ],
  options: {
    'metadata-dir': { type: 'string' },
    'metadata-url': { type: 'string' },
    'target-name': { type: 'string' },
    'target-base-url': { type: 'string' },
    'target-dir': { type: 'string' },
    verbose: { type: 'boolean', short: 'v', multiple: true },
  },
  allowPositionals: true,
  usageExitCode: 1,
  async run(args, io) {
    try {
      await runAction(args, io);
      return 0;
    } catch (error) {
      const line = error instanceof SdcError ? `${error.code}: ${error.message}` : `internal error: ${(error as Error)?.message ?? String(error)}`;
      // The repository's answers reach the message (a URL, a status line): escaped as every refusal is (cli/main.ts).
      io.stderr(`sdc tuf-client: ${escapedUnshown(line)}\n`);
      return 1;
    }
  },
};

async function runAction(args: ParsedCommandArgs, io: CliIo): Promise<void> {
  const [action, ...rest] = args.positionals;
  if (!isAction(action)) throw new SdcError('CLI_USAGE', `expected one of ${actions.join(', ')} (see 'sdc tuf-client --help')`);
  if (rest.length !== (action === 'init' ? 1 : 0)) {
    throw new SdcError('CLI_USAGE', action === 'init' ? 'init takes exactly one TRUSTED_ROOT file' : `${action} takes no arguments`);
  }
  const metadataDir = required(args, 'metadata-dir');
  if (action === 'init') {
    await initialise(metadataDir, rest[0]!);
    io.stdout(`sdc tuf-client: initialised ${metadataDir} with the trusted root\n`);
    return;
  }
  // Loaded when a workflow runs, not for --help: node:https and the crypto adapter.
  const [{ Updater }, driver, { createHttpFetcher }, { createNodeTufCrypto }, { systemClock, systemScheduler }] = await Promise.all([
    import('../../core/tuf/updater.js'), import('../../agent/tuf/driver.js'), import('../../agent/tuf/http-fetcher.js'),
    import('../../runtime/tuf-crypto-node.js'), import('../../runtime/system.js'),
  ]);
  const downloading = action === 'download';
  const updater = new Updater({
    metadataBaseUrl: required(args, 'metadata-url'),
    ...(downloading ? { targetBaseUrl: required(args, 'target-base-url') } : {}),
    nowMs: systemClock.nowMs(),
    crypto: createNodeTufCrypto(),
  });
  const targetName = downloading ? required(args, 'target-name') : '';
  const io2 = {
    metadata: driver.directoryStore(metadataDir),
    ...(downloading ? { targets: driver.directoryStore(required(args, 'target-dir')) } : {}),
    fetcher: createHttpFetcher({ scheduler: systemScheduler }),
    timeouts: driver.defaultTufTimeouts,
  };
  if (!downloading) {
    await driver.runTufWorkflow(updater.refresh(), io2);
    io.stdout(`sdc tuf-client: refreshed; timestamp version ${updater.trusted?.timestamp?.version}\n`);
    return;
  }
  const result = await driver.runTufWorkflow(updater.downloadTarget(targetName), io2);
  io.stdout(`sdc tuf-client: ${targetName} ${result.downloaded ? 'downloaded and verified' : 'already present and verified'} as ${result.fileName}\n`);
}

function isAction(value: string | undefined): value is Action {
  return (actions as readonly (string | undefined)[]).includes(value);
}

function required(args: ParsedCommandArgs, name: string): string {
  const value = args.values[name];
  if (typeof value !== 'string' || value.length === 0) throw new SdcError('CLI_USAGE', `missing required option --${name}`);
  return value;
}

/** Copies the trusted root's bytes as they are (the protocol expects no checks here: refresh verifies it). */
async function initialise(metadataDir: string, trustedRootPath: string): Promise<void> {
  const [{ readFile, stat, mkdir }, { directoryStore }] = await Promise.all([import('node:fs/promises'), import('../../agent/tuf/driver.js')]);
  let bytes: Uint8Array;
  try {
    // Size first, so a mistaken path to a huge file is refused without reading it.
    if ((await stat(trustedRootPath)).size > trustedRootBytesMax) {
      throw new SdcError('TUF_TOO_LARGE', `${trustedRootPath} exceeds ${trustedRootBytesMax} bytes`);
    }
    bytes = new Uint8Array(await readFile(trustedRootPath));
  } catch (error) {
    if (error instanceof SdcError) throw error;
    throw new SdcError('TUF_LOCAL_STORE', `cannot read ${trustedRootPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    await mkdir(metadataDir, { recursive: true });
  } catch (error) {
    throw new SdcError('TUF_LOCAL_STORE', `cannot create ${metadataDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  await directoryStore(metadataDir).write('root.json', bytes);
}
