import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CommandStore, commandStoreLimits, noGateway } from './command-store.js';

function listOf(store: CommandStore, agent: number): number[] {
  const out: number[] = [];
  for (let c = store.agentHead[agent]!; c !== -1; c = store.nextOfAgent[c]!) out.push(c);
  return out;
}

describe('model command store', () => {
  it('keeps each agent\'s commands in creation order and grows past its initial capacity with every field intact', () => {
    const store = new CommandStore(3);
    const count = commandStoreLimits.capacityInitial * 2 + 5;
    for (let i = 0; i < count; i += 1) store.add(i % 3, i % 5, i, i + 1_000);
    assert.equal(store.count, count);
    assert.deepEqual(listOf(store, 1).slice(0, 4), [1, 4, 7, 10]);
    const last = count - 1;
    assert.deepEqual([store.agent[last], store.opcode[last], store.createdAtMs[last], store.expiresAtMs[last]], [last % 3, last % 5, last, last + 1_000]);
    assert.equal(store.cpDispatchedAtMs[last], -1);
    assert.equal(store.cpGateway[last], noGateway);
    assert.equal(store.dlvGateway[last], noGateway);
  });

  it('prunes settled commands from the head, the middle and the tail, and appends after the new tail', () => {
    const store = new CommandStore(1);
    for (let i = 0; i < 6; i += 1) store.add(0, 0, i, i);
    store.prune(0, (c) => c === 0 || c === 2 || c === 5);
    assert.deepEqual(listOf(store, 0), [1, 3, 4]);
    assert.equal(store.add(0, 0, 6, 6), 6);
    assert.deepEqual(listOf(store, 0), [1, 3, 4, 6]);
    store.prune(0, () => true);
    assert.deepEqual(listOf(store, 0), []);
    store.add(0, 0, 7, 7);
    assert.deepEqual(listOf(store, 0), [7]);
  });

  it('numbers error codes once each, 0 meaning none', () => {
    const store = new CommandStore(1);
    const a = store.codeOf('KERNEL_REFUSED');
    assert.equal(store.codeOf('KERNEL_REFUSED'), a);
    assert.notEqual(store.codeOf('AGENT_INTERRUPTED'), a);
    assert.equal(store.codes[0], '');
    assert.equal(store.codes[a], 'KERNEL_REFUSED');
  });
});
