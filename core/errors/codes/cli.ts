import { defineErrors } from '../error-spec.js';

/** Command-line usage (cli/). Printed as one line, never with a stack trace. */
export const cliErrors = defineErrors({
  CLI_USAGE: { fault: 'remote', status: 400, summary: 'Unknown command, unknown option or missing argument' },
  CLI_INPUT: { fault: 'remote', status: 400, summary: 'An input file or value cannot be read or is invalid' },
  CLI_SECRET_FILE_PERMISSIONS: { fault: 'remote', status: 400, summary: 'A secret file (a passphrase file, the stored login credentials.json) is readable or writable by group or others (chmod 600 it)' },
  CLI_ROOT_KEY_PASSPHRASE_MISSING: { fault: 'remote', status: 400, summary: 'No passphrase for a new root CA key (--root-key-passphrase-file, SDC_ROOT_KEY_PASSPHRASE or a terminal) and no --insecure-plain-root-key' },
});
