#!/usr/bin/env node
// The `sdc` command line. The sources are TypeScript; tsx compiles them on load,
// so an installed checkout runs without a separate build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
