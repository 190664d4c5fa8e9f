import { randomBytes } from 'node:crypto';

/**
 * The test runner's namespace for the real stores (scripts/run-tests.mjs sets it for each run:
 * lowercase hex). The tests' harnesses put it into their own Redis key prefixes and MySQL database
 * names, so that after a run whose test file was killed (its file timeout) or crashed, the runner
 * can delete what that process left under the namespace (scripts/test-store-sweep.mjs); a process
 * that ends normally removes its own.
 */
export const testStoreNamespaceVariable = 'SDC_TEST_STORE_NAMESPACE';

/** Lowercase hex, long enough that matching it anywhere in a name cannot reach another run's or a deployment's data. */
const namespacePattern = /^[0-9a-f]{12,32}$/;

/** The run's namespace, or '' when none is set (a test file run by hand) or it is not lowercase hex of 12-32 characters. */
export function testStoreNamespace(env: NodeJS.ProcessEnv = process.env): string {
  const value = env[testStoreNamespaceVariable];
  return value !== undefined && namespacePattern.test(value) ? value : '';
}

/**
 * A fresh tag for a test's own store names (key prefix, database name): the run's namespace then
 * `bytes` random bytes, all lowercase hex, so it fits where a bare random hex tag did.
 */
export function testStoreTag(bytes = 4, env: NodeJS.ProcessEnv = process.env): string {
  return `${testStoreNamespace(env)}${randomBytes(bytes).toString('hex')}`;
}
