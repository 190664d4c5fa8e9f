/** Builds a mock kernel target for the contract suite, the bridge factory and the bench. */
import { createNodeEd25519Provider } from '../../runtime/ed25519-node.js';
import type { Clock, Ed25519Provider, RandomSource, Scheduler } from '../../core/ports/ports.js';
import type { KernelTarget } from '../kernel-contract-suite.js';
import type { ProcessEntry } from '../payloads.js';
import type { KernelFault } from './faults.js';
import { MemoryArtifactStore, MockIoctlDevice } from './mock-kernel.js';

export const sampleProcesses: readonly ProcessEntry[] = [
  { pid: 1, ppid: 0, rssKib: 10240n, name: 'init' },
  { pid: 42, ppid: 1, rssKib: 2048n, name: 'sdc-agent' },
  { pid: 77, ppid: 42, rssKib: 512n, name: 'a-process-name-longer-than-thirty-one-bytes' },
];

export function createMockTarget(options: {
  agentSeed: Uint8Array;
  serviceSeed: Uint8Array;
  clock: Clock;
  ed25519?: Ed25519Provider;
  faults?: readonly KernelFault[];
  random?: RandomSource;
  scheduler?: Scheduler;
  lockScreenSupported?: boolean;
}): KernelTarget & { device: MockIoctlDevice } {
  const ed25519 = options.ed25519 ?? createNodeEd25519Provider();
  const artifacts = new MemoryArtifactStore();
  // The kernel's clock is the given one plus what the suite lets elapse (manual time: no waiting).
  let elapsedMs = 0;
  const device = new MockIoctlDevice({
    ed25519,
    serviceSeed: options.serviceSeed,
    agentPublicKey: ed25519.publicKeyFromSeed(options.agentSeed),
    clock: { nowMs: () => options.clock.nowMs() + elapsedMs },
    processes: () => sampleProcesses,
    artifacts,
    lockScreenSupported: options.lockScreenSupported ?? false,
    faults: options.faults,
    random: options.random,
    scheduler: options.scheduler,
  });
  return {
    device,
    ed25519,
    agentSeed: options.agentSeed,
    servicePublicKey: ed25519.publicKeyFromSeed(options.serviceSeed),
    putArtifact(name, bytes) {
      const path = `/artifacts/${name}`;
      artifacts.put(path, bytes);
      return path;
    },
    async elapse(ms) {
      elapsedMs += ms;
    },
    virtualTime: true,
    cleanup() {},
  };
}
