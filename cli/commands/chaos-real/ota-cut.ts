import { createHash } from 'node:crypto';
import type { Toxic } from 'toxiproxy-node-client';
import { SdcError } from '../../../core/errors/index.js';
import type { RolloutView } from '../../../server/ota/rollouts.js';
import { systemClock, systemRandom } from '../../../runtime/system.js';
import type { OtaDeviceFacts } from '../../../sim/real/messages.js';
import { otaFactoryVersion, otaPlatform } from '../../../sim/real/worker-ota.js';
import { waitFor, type FaultContext, type RealFaultScenario } from './fault-context.js';

/**
 * `sdc chaos run --scenario ota-cut` (issue 11's "OTA failures mid-download"): a release signed by
 * two release signers and published in the deployment's image repository, then a rollout to every
 * agent, whose artifact downloads (the presigned URLs of the notices) go through the `artifacts`
 * proxy with a `limit_data` toxic downstream: each connection is closed after `cutBytes`, mid-body,
 * so every download is cut several times and must resume where it was cut. The agents run the real
 * update runner on their mock kernels (sim/real/worker-ota.ts); the last agent's health check fails
 * (with two agents or more), so its update must roll back. Checked from outside, besides the run's
 * usual checkers and probes: every device ends as said (succeeded, or rolled_back), each request
 * after a cut asked from exactly the bytes it held (`Range: bytes=N-`, answered 206), no STAGE read
 * bytes of another digest (no splice), and no update kernel call was made twice.
 */

/** The artifact: large enough that each download needs at least five connections under the cut. */
export const otaArtifactBytes = 96 * 1024;
/**
 * Each artifact connection is closed after this many bytes towards the agent (TLS handshake and
 * response headers included, about 3 KB): 160 KB takes six connections or more.
 */
export const otaCutBytes = 32 * 1024;
/** The rollout must end within this of its start (a download costs a few round trips per cut). */
const rolloutSettleBoundMs = 90_000;
const releaseVersion = '2.0.0';
const terminal = new Set(['succeeded', 'rejected', 'failed', 'rolled_back', 'rollback_failed', 'timed_out', 'canceled']);

interface OtaCutRun {
  readonly releaseId: string;
  readonly sha256: string;
  readonly rolloutId: string;
  readonly unhealthy: readonly string[];
  readonly startedAtMs: number;
  /** Read at the heal, while the agents' workers still run (they are stopped before afterRun). */
  settled?: { readonly view: RolloutView; readonly facts: readonly OtaDeviceFacts[] };
}

/** What inject started, for the heal and afterRun of the same run (a run is one scenario at a time, each its own context). */
const runs = new WeakMap<FaultContext, OtaCutRun>();

export function otaCutScenario(): RealFaultScenario {
  return {
    name: 'ota-cut', matrixFault: 'ota_mid_download', cutsSessions: false, imageRepository: true, chaosSettings: { ota: true },
    summary: `a rollout whose artifact downloads are cut every ${otaCutBytes / 1024} KB (limit_data downstream on the presigned URLs' proxy; a ${otaArtifactBytes / 1024} KB artifact): each download resumes from its bytes, every device succeeds (the last one's health check fails: rolled back), nothing staged twice or spliced`,
    inject: async (context) => {
      const artifacts = context.proxies.artifacts;
      const ota = context.deployment.controlPlane?.ota;
      if (artifacts === undefined || ota === undefined || context.repositoryKeys === undefined) throw new SdcError('CHAOS_FAULT_FAILED', 'ota-cut needs the image repository and the artifacts proxy');
      const toxic: Toxic<unknown> = await artifacts.addToxic({ name: 'limit_data_downstream', type: 'limit_data', stream: 'downstream', toxicity: 1, attributes: { bytes: otaCutBytes } });
      const artifact = Buffer.from(systemRandom.bytes(otaArtifactBytes));
      const releaseId = `chaos-${context.tag}-${releaseVersion.replaceAll('.', '-')}`;
      const sha256 = createHash('sha256').update(artifact).digest('hex');
      await publishRelease(context, releaseId, artifact, sha256);
      const ids = context.agents.map((a) => a.deviceId);
      const unhealthy = ids.length >= 2 ? [ids[ids.length - 1]!] : [];
      context.pool.broadcast({ type: 'ota_unhealthy', deviceIds: unhealthy });
      const startedAtMs = systemClock.nowMs();
      const rollout = await context.api.call<RolloutView>('POST', '/v1/rollouts', {
        release_id: releaseId, platform: otaPlatform, device_ids: ids, devices_per_minute_max: 1_000,
        // One wave; the unhealthy device's rollback is expected, so no error threshold pauses it.
        waves: [{ device_ids: ids, success_threshold: { succeeded_min: 0, succeeded_percent_min: 0, soak_ms: 0 }, error_threshold: { executed_min: ids.length, failed_percent_max: 100 } }],
      });
      const run: OtaCutRun = { releaseId, sha256, rolloutId: rollout.id, unhealthy, startedAtMs };
      runs.set(context, run);
      context.note('ota', { release_id: releaseId, sha256, artifact_bytes: otaArtifactBytes, cut_bytes: otaCutBytes, rollout_id: rollout.id, expected_rolled_back: unhealthy });
      return async () => {
        // The cut stays on until every execution ended: healed earlier, a download could finish uncut.
        // And until the rollout itself left `running`: its wave is judged after the last execution's
        // transition, a step later (on a busy machine a read in between saw every execution terminal
        // and the rollout still running, and the run reported `running` for `completed`).
        const done = await waitFor(async () => {
          const view = await context.api.call<RolloutView>('GET', `/v1/rollouts/${rollout.id}`);
          return view.executions.length === ids.length && view.executions.every((e) => terminal.has(e.state)) && view.status !== 'running' ? view : undefined;
        }, rolloutSettleBoundMs, 250);
        context.note('ota_rollout_settled_after_ms', done === undefined ? null : systemClock.nowMs() - startedAtMs);
        if (done === undefined) context.violation('liveness', `the rollout's executions were not all terminal, or the rollout still running, ${rolloutSettleBoundMs} ms after its start`);
        await toxic.remove();
        run.settled = { view: await context.api.call<RolloutView>('GET', `/v1/rollouts/${rollout.id}`), facts: await context.pool.otaFacts(ids) };
      };
    },
    afterRun: async (_run, context) => {
      const started = runs.get(context);
      if (started === undefined) return;
      if (started.settled === undefined) {
        context.violation('liveness', 'the rollout and the agents\' update facts were never read (the heal did not complete)');
        return;
      }
      const { view, facts } = started.settled;
      context.note('ota_rollout', { status: view.status, executions: Object.fromEntries(view.executions.map((e) => [e.device_id, e.state])) });
      context.note('ota_devices', facts.map(summary));
      for (const agent of context.agents) {
        const expected = started.unhealthy.includes(agent.deviceId) ? 'rolled_back' : 'succeeded';
        const execution = view.executions.find((e) => e.device_id === agent.deviceId);
        const device = facts.find((f) => f.deviceId === agent.deviceId);
        for (const v of deviceViolations({ expected, execution, device, sha256: started.sha256 })) context.violation(v.checker, `${agent.deviceId}: ${v.message}`);
      }
      // The fault bit only if some download was cut and resumed.
      if (!facts.some((f) => f.requests.length > 1)) context.violation('fault', 'no artifact download was cut: every device fetched it in one request');
    },
  };
}

/** As release signers do it (docs/ota.md, "Releases"): create, upload, two signers' signatures over the proposal, publish. */
async function publishRelease(context: FaultContext, releaseId: string, artifact: Uint8Array, sha256: string): Promise<void> {
  const ota = context.deployment.controlPlane!.ota!;
  const keys = context.repositoryKeys!;
  await ota.releases.create({
    id: releaseId, version: releaseVersion, artifact_name: 'agent.bin', platforms: [otaPlatform], min_agent_version: '0.1.0',
    reboot_required: true, health_check: { timeout_ms: 60_000, probes: ['kernel_status'] },
  }, context.admin);
  await ota.releases.upload(releaseId, (async function* () { yield artifact; })(), { sha256 }, context.admin);
  const proposal = await ota.releases.proposal(releaseId);
  // Two signers, two accounts: one operator holding two keys is still one person.
  for (const [index, signer] of [context.admin, `${context.admin}-second-signer`].entries()) {
    const key = keys.targets[index]!.key;
    await ota.releases.addSignature(releaseId, { keyid: key.keyid, sig: key.sign(new TextEncoder().encode(proposal.signed_canonical)) }, signer);
  }
  await ota.releases.publish(releaseId, context.admin);
}

type Violation = { checker: string; message: string };

/** One device's update, judged from outside: its end state, the resumes, the staged digests, the kernel calls. */
export function deviceViolations(input: {
  expected: 'succeeded' | 'rolled_back'; execution: { state: string } | undefined; device: OtaDeviceFacts | undefined; sha256: string;
}): Violation[] {
  const { expected, execution, device, sha256 } = input;
  const found: Violation[] = [];
  if (execution?.state !== expected) found.push({ checker: 'liveness', message: `execution ${execution?.state ?? 'never created'}, expected ${expected}` });
  if (device === undefined) return [...found, { checker: 'liveness', message: 'no update facts from its worker' }];
  found.push(...resumeViolations(device.requests));
  // No splice: every STAGE read exactly the published bytes (the kernel would refuse others, but it must never be asked).
  const spliced = device.staged_sha256.filter((digest) => digest !== sha256);
  if (spliced.length > 0) found.push({ checker: 'no_splice', message: `STAGE read bytes with SHA-256 ${spliced.join(', ')}, not the release's ${sha256}` });
  if (device.kernel.stage_failures > 0) found.push({ checker: 'no_splice', message: `the kernel refused ${device.kernel.stage_failures} STAGE(s)` });
  // Nothing executed twice: one STAGE, one COMMIT, and a ROLLBACK only for the device that rolls back.
  const calls = device.kernel_calls;
  const rollbacks = expected === 'rolled_back' ? 1 : 0;
  if (calls.stage !== 1 || calls.commit !== 1 || calls.rollback !== rollbacks) {
    found.push({ checker: 'at_most_once', message: `update kernel calls stage ${calls.stage}, commit ${calls.commit}, rollback ${calls.rollback} (expected 1, 1, ${rollbacks})` });
  }
  const version = expected === 'succeeded' ? releaseVersion : otaFactoryVersion;
  if (device.kernel.current_version !== version || device.kernel.commits !== 1 || device.kernel.rollbacks !== rollbacks) {
    found.push({ checker: 'liveness', message: `the kernel runs ${device.kernel.current_version} after ${device.kernel.commits} commit(s) and ${device.kernel.rollbacks} rollback(s), expected ${version}, 1, ${rollbacks}` });
  }
  return found;
}

/**
 * Each cut download resumed from its offset: the first request from 0 (200), every later one from
 * exactly the bytes received before it (206), so nothing was fetched twice or skipped; the last one
 * ended uncut. A request that got no answer (cut before its headers) is asked again from the same offset.
 */
export function resumeViolations(requests: OtaDeviceFacts['requests']): Violation[] {
  const found: Violation[] = [];
  if (requests.length === 0) return [{ checker: 'resume', message: 'no artifact request was made' }];
  let held = 0;
  requests.forEach((r, i) => {
    if (r.offset !== held) found.push({ checker: 'resume', message: `request ${i + 1} asked from byte ${r.offset}, but ${held} bytes had arrived` });
    const status = r.offset === 0 ? 200 : 206;
    if (r.status !== 0 && r.status !== status) found.push({ checker: 'resume', message: `request ${i + 1} from byte ${r.offset} was answered ${r.status}, not ${status}` });
    held = r.offset + r.bytes;
  });
  if (requests[requests.length - 1]!.cut) found.push({ checker: 'resume', message: 'the last request was cut' });
  return found;
}

function summary(f: OtaDeviceFacts): Record<string, unknown> {
  return {
    device: f.deviceId, requests: f.requests.length, resumed_from: f.requests.slice(1).map((r) => r.offset), statuses: f.requests.map((r) => r.status),
    cut: f.requests.filter((r) => r.cut).length, staged_sha256: f.staged_sha256, kernel_calls: f.kernel_calls, kernel: f.kernel, execution: f.execution,
  };
}
