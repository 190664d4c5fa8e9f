import { defineErrors } from '../error-spec.js';

/** Command-line usage (cli/). Printed as one line, never with a stack trace. */
export const cliErrors = defineErrors({
  CLI_USAGE: { fault: 'remote', status: 400, summary: 'Unknown command, unknown option or missing argument' },
  CLI_INPUT: { fault: 'remote', status: 400, summary: 'An input file or value cannot be read or is invalid' },
});
