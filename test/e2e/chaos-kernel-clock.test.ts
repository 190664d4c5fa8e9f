import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertProcessRunHeld, chaosAgents as agents, chaosRunPassing } from './support/chaos-run-driver.js';

// `sdc chaos run`'s kernel errors and clock skew in a short form (issue 11): 2 agents on embedded
// stores, 5 s of commands, the fault from 1 s to 4 s, the outside probes during and after it.
// Judged by what held, never by how long anything took.

describe('sdc chaos run: kernel errors and clock skew', () => {
  it('kernel errors and clock skew: failed commands end failed once; clocks beyond the bound refused PROTO_CLOCK_SKEW, within admitted', async () => {
    const [kernel, skew] = await chaosRunPassing('kernel-errors,clock-skew');
    assertProcessRunHeld(kernel!, agents);
    // Every failure is the fault's: KERNEL_REFUSED with the kernel's IO_ERROR (the mock answers every opcode of the mix otherwise).
    assert.deepEqual(Object.keys(kernel!.scenario_facts.failed_by_code as object), ['KERNEL_REFUSED:IO_ERROR'], JSON.stringify(kernel!.scenario_facts));
    assert.equal(kernel!.run.counts.kernel_calls, kernel!.run.counts.commands_accepted, 'a failed call is still one call: none retried');
    assertProcessRunHeld(skew!, agents);
    const during = skew!.scenario_facts.agents_during_skew as Array<{ device: string; ready: boolean; close_reasons: string[] }>;
    const skews = skew!.scenario_facts.skew_ms as Record<string, number>;
    for (const agent of during) {
      if (Math.abs(skews[agent.device]!) > 300_000) {
        assert.equal(agent.ready, false, agent.device);
        assert.ok(agent.close_reasons.includes('authentication refused: PROTO_CLOCK_SKEW'), JSON.stringify(agent));
      } else assert.equal(agent.ready, true, agent.device);
    }
  });
});
