import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandArgs, type CliIo } from '../command.js';
import { agentCommand } from './agent.js';

const io: CliIo = { stdout: () => undefined, stderr: () => undefined, readStdin: async () => '', env: {} };
const run = (argv: string[]) => agentCommand.run(parseCommandArgs(agentCommand, ['--dir', '/nonexistent-sdc-agent-dir', ...argv]), io);

/** Decision 0004, "Batches": `sdc agent` turns telemetry batching on with two options, validated before anything starts. */
describe('sdc agent --telemetry-samples-per-frame, --telemetry-batch-delay', () => {
  it('refuses values out of range, without a unit, or a delay without batching, as usage errors; help names both', async () => {
    for (const bad of ['0', '65', 'x', '1.5', '']) {
      await assert.rejects(run(['--telemetry-samples-per-frame', bad]), { code: 'CLI_USAGE' }, `samples per frame ${bad}`);
    }
    for (const bad of ['5', '50ms', '2h', 'soon']) {
      await assert.rejects(run(['--telemetry-samples-per-frame', '8', '--telemetry-batch-delay', bad]), { code: 'CLI_USAGE' }, `batch delay ${bad}`);
    }
    await assert.rejects(run(['--telemetry-batch-delay', '10s']), { code: 'CLI_USAGE' });
    await assert.rejects(run(['--telemetry-samples-per-frame', '1', '--telemetry-batch-delay', '10s']), { code: 'CLI_USAGE' });
    assert.match(agentCommand.usage, /--telemetry-samples-per-frame N \[--telemetry-batch-delay D\]/);
    const help = agentCommand.optionHelp!.map(([option]) => option);
    assert.ok(help.includes('--telemetry-samples-per-frame N') && help.includes('--telemetry-batch-delay D'), help.join(', '));
  });
});
