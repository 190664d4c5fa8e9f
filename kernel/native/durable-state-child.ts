// Not a *.test.ts file: run by durable-state.test.ts in a child node with a preloaded fsync shim
// (SDC_TEST_DIR_FSYNC: 'fail' makes a directory fsync fail EIO, 'einval' EINVAL, 'count' writes
// "sdc-dir-fsync" to stderr for each). Provisions with the shim idle, then runs one signed
// EXEC_LOCK_SCREEN under the mode given in argv and prints its outcome as one JSON line.
import { SdcError } from '../../core/errors/index.js';
import { signCommand } from '../../core/protocol/signed-command.js';
import { systemScheduler } from '../../runtime/system.js';
import { IoctlKernelBridge } from '../bridge/kernel-bridge.js';
import { commandAuthorization } from '../command/authorization.js';
import { createNativeTarget } from './native-target.js';

const [libraryPath = '', mode = ''] = process.argv.slice(2);
const agentSeed = new Uint8Array(32).fill(7);
const cpSeed = new Uint8Array(32).fill(9);
const deviceId = 'durable-state-01';
const target = createNativeTarget({ libraryPath, agentSeed, serviceSeed: new Uint8Array(32).fill(8) });
const { ed25519 } = target;
const bridge = new IoctlKernelBridge({ device: target.device, ed25519, agentSeed, servicePublicKey: target.servicePublicKey, counterStart: 1n, timeoutMs: 60_000, scheduler: systemScheduler });
const lock = commandAuthorization(signCommand({
  command: { id: 'ds1', device_id: deviceId, opcode: 'EXEC_LOCK_SCREEN', args: {}, issued_at: Date.now(), expires_at: Date.now() + 3_600_000, device_seq: 1, issuer: 'test' },
  kid: 'cp', seed: cpSeed, provider: ed25519,
} as Parameters<typeof signCommand>[0]));
let outcome: string;
try {
  await bridge.provisionCommandKeys({ deviceId, keys: [ed25519.publicKeyFromSeed(cpSeed)] });
  process.env.SDC_TEST_DIR_FSYNC = mode; // setenv: the shim reads it at each fsync
  process.stderr.write('sdc-command-start\n');
  await bridge.lockScreen(lock);
  outcome = 'OK';
} catch (error) {
  outcome = SdcError.is(error) ? String(error.details.status ?? error.code) : String(error);
} finally {
  delete process.env.SDC_TEST_DIR_FSYNC;
  target.device.close();
  target.cleanup();
}
process.stdout.write(`${JSON.stringify({ outcome })}\n`);
