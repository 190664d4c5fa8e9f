import { createHash } from 'node:crypto';
import { SdcError } from '../../core/errors/index.js';
import type { Clock } from '../../core/ports/ports.js';
import type { OtaServices } from '../../server/ota/ota-service.js';
import { generateRepositoryKeys, initialMetadata, writeRepositoryFiles, type RepositoryKeys } from '../../server/ota/repository-init.js';
import type { RolloutView } from '../../server/ota/rollouts.js';

/**
 * The demo's update rollout (docs/ota.md): an image repository written into the demo's data
 * directory before the control plane starts (as `sdc ota init` does, keys kept in memory and
 * thrown away with the demo), a release signed by two release signers and published, then a
 * rollout in two waves (one canary device, then the rest) through the REST API, and its outcome.
 */
export interface DemoRolloutSummary {
  status: string;
  devices: number;
  succeeded: number;
  failed: number;
  not_finished: number;
}

export async function prepareDemoRepository(dataDir: string, clock: Clock): Promise<RepositoryKeys> {
  const keys = generateRepositoryKeys();
  await writeRepositoryFiles(dataDir, keys, initialMetadata(keys, clock.nowMs()));
  return keys;
}

/** The platform name the agents report by default (agent-runtime's defaultPlatform). */
export function demoPlatform(): string {
  return `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
}

export async function runDemoRollout(options: {
  ota: OtaServices; keys: RepositoryKeys; runTag: string; deviceIds: readonly string[]; deadlineMs: number; clock: Clock;
  api: <T>(method: 'GET' | 'POST', path: string, body?: unknown) => Promise<T>;
  sleep: (ms: number) => Promise<void>;
}): Promise<DemoRolloutSummary> {
  const { ota, keys } = options;
  const releaseId = `demo-${options.runTag}-2-0-0`;
  const artifact = Buffer.from('sdc demo release 2.0.0\n'.repeat(256));
  await ota.releases.create({
    id: releaseId, version: '2.0.0', artifact_name: 'agent.bin', platforms: [demoPlatform()], min_agent_version: '0.1.0',
    reboot_required: true, health_check: { timeout_ms: 60_000, probes: ['kernel_status'] },
  }, 'demo-release-manager');
  await ota.releases.upload(releaseId, (async function* () { yield new Uint8Array(artifact); })(), { sha256: createHash('sha256').update(artifact).digest('hex') }, 'demo-release-manager');
  const proposal = await ota.releases.proposal(releaseId);
  // Two release signers, two people: what `sdc release sign` does on each signer's machine.
  for (const [index, signer] of ['demo-signer-1', 'demo-signer-2'].entries()) {
    const key = keys.targets[index]!.key;
    await ota.releases.addSignature(releaseId, { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(proposal.signed_canonical)) }, signer);
  }
  await ota.releases.publish(releaseId, 'demo-release-manager');
  const thresholds = { success_threshold: { succeeded_min: 1, succeeded_percent_min: 90, soak_ms: 0 }, error_threshold: { executed_min: 1, failed_percent_max: 10 } };
  const [canary, ...rest] = options.deviceIds;
  if (canary === undefined) throw new SdcError('PROTO_INVALID_ARGUMENT', 'a rollout needs a device');
  const started = await options.api<RolloutView>('POST', '/v1/rollouts', {
    release_id: releaseId, platform: demoPlatform(), device_ids: options.deviceIds, devices_per_minute_max: 600,
    waves: rest.length === 0 ? [{ device_ids: [canary], ...thresholds }] : [{ device_ids: [canary], ...thresholds }, { percent: 100, ...thresholds }],
  });
  let view = started;
  while (view.status === 'running' && options.clock.nowMs() < options.deadlineMs) {
    await options.sleep(250);
    view = await options.api<RolloutView>('GET', `/v1/rollouts/${started.id}`);
  }
  const succeeded = view.executions.filter((e) => e.state === 'succeeded').length;
  const failed = view.waves.reduce((sum, wave) => sum + wave.failed, 0);
  return { status: view.status, devices: options.deviceIds.length, succeeded, failed, not_finished: options.deviceIds.length - succeeded - failed };
}
