import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../core/random/prng.js';
import { opcodePicker } from '../scenario.js';
import { startedWorld, testScenario } from './test-support.js';

describe('model workload', () => {
  it('creates the commands the full tier creates: same gaps, devices and opcodes from the sixth fork of the seed', () => {
    const mix = { EXEC_PING_KERNEL: 5, EXEC_GET_STATUS: 3, EXEC_LOCK_SCREEN: 1 };
    const scenario = testScenario({ agents: 25, safetyMs: 30_000, commands: { perAgentHour: 60, ttlMs: 600_000, mix } });
    const world = startedWorld(scenario, { seed: 3 });
    const seen: string[] = [];
    world.controlPlane.create = (agent, opcode) => { seen.push(`${world.nowMs} ${agent} ${opcode}`); };
    world.runUntil(40_000);

    const root = new SeededRandom(3);
    for (let i = 0; i < 5; i += 1) root.fork();
    const commands = root.fork();
    const pick = opcodePicker(mix, commands);
    const gapMaxMs = Math.round(2 * (3_600_000 / (25 * 60)));
    const expected: string[] = [];
    for (let t = commands.intBetween(0, gapMaxMs); t < 30_000; t += commands.intBetween(0, gapMaxMs)) expected.push(`${t} ${commands.intBelow(25)} ${pick()}`);
    assert.deepEqual(seen, expected);
    assert.ok(seen.length >= 5, 'one command per agent-minute: about 12 in 30 s');
  });
});
