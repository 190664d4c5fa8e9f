import { loadIdentity } from '../../../agent/enrollment.js';
import { agentPaths } from '../../../agent/state/agent-state.js';
import { clockOffsetLimits } from '../../../core/protocol/clock-offset.js';
import { closeCodes } from '../../../server/gateway/close-codes.js';
import { SdcError } from '../../../core/errors/index.js';
import { systemClock } from '../../../runtime/system.js';
import { parseCertificate } from '../../../trust/x509-provider.js';
import { normalizeSerialHex } from '../../../trust/serial-number.js';
import { createNodeEd25519Provider } from '../../../runtime/ed25519-node.js';
import { crashGateway, startReplacementGateway } from './gateway-restart.js';
import { gatewayAnswer } from './outside-probes.js';
import { failedByCode, waitFor, type FaultContext, type RealFaultScenario } from './fault-context.js';
import type { GatewayCoreOptions } from '../../../server/gateway/gateway-core.js';

/**
 * The real-socket faults that act on processes and trust rather than on the network (issue 11):
 * an agent process killed and started again, the gateway crashed and restarted, the mock kernels
 * failing calls, agent clocks beyond and within the allowed skew, the operator's JWT expiring,
 * and a device certificate revoked while connected. Each checks, besides sim --real's checkers,
 * the promise of its own fault from outside.
 */

const provider = createNodeEd25519Provider();
/** startDeployment's default, which sdc chaos run keeps. */
const deploymentGatewayId = 'gw-1';
/** The gateway closes a revoked device's session at once on the revocation notice (docs/gateway.md 7); this is our allowance for "at once" on a busy machine. The fallback, a lost notice, is the 60 s session re-check. */
export const revokedCloseBoundMs = 5_000;
/** How long the revoked agent may take to be refused once (its reconnect backoff is at most 8 s). */
const revokedRefusalBoundMs = 15_000;
/** Beyond and within the gateway's clock bound (5 min): 400 s and 200 s. */
const skewBeyondMs = clockOffsetLimits.offsetMsMax + 100_000;
const skewWithinMs = clockOffsetLimits.offsetMsMax - 100_000;
/** How long a skewed fleet may take to show what the gateway decided (reconnect backoff is at most 8 s). */
const skewSettleBoundMs = 20_000;

/** Every agent's session cut (the gateway proxy disabled then enabled), so that each opens a new one. */
async function cutSessions(context: FaultContext): Promise<void> {
  const p = context.proxies.gateway;
  await p.update({ enabled: false, listen: p.listen, upstream: p.upstream });
  await p.update({ enabled: true, listen: p.listen, upstream: p.upstream });
}

export function processFaultScenarios(gatewayTuning: Partial<GatewayCoreOptions>): RealFaultScenario[] {
  return [
    {
      name: 'agent-kill', matrixFault: 'agent_crash', cutsSessions: false, chaosSettings: { durableJournal: true },
      summary: "the agents' worker process SIGKILLed (no close, no stop) and started again on the same enrollment, journal files and kernel-call log",
      inject: async (context) => {
        await context.pool.killAll();
        return async () => { context.pool.restartKilled(); };
      },
    },
    {
      name: 'gateway-crash', matrixFault: 'gateway_crash', cutsSessions: true,
      summary: 'the gateway aborted and its sockets destroyed (a crash: no close frames, nothing handed back); a new gateway with the same id starts on the same stores at the heal',
      inject: async (context) => {
        crashGateway(context.deployment);
        return async () => {
          const replacement = await startReplacementGateway({
            deployment: context.deployment, materials: context.materials, gatewayId: deploymentGatewayId, tuning: gatewayTuning, logger: context.logger.child({ role: 'gateway-replacement' }),
          });
          context.onCleanup(() => replacement.stop());
          const { address } = replacement.server;
          const p = context.proxies.gateway;
          await p.update({ enabled: true, listen: p.listen, upstream: `${address.host}:${address.port}` });
          context.gatewayUrl = address.url;
        };
      },
    },
    {
      name: 'kernel-errors', matrixFault: 'kernel_error', cutsSessions: false, chaosSettings: { switchableKernelFaults: true },
      summary: "every agent's mock kernel answers IO_ERROR to 1 in 2 privileged calls (the kernel's own fault injection)",
      inject: async (context) => {
        context.pool.broadcast({ type: 'kernel_faults', numerator: 1, denominator: 2, status: 'IO_ERROR' });
        return async () => { context.pool.broadcast({ type: 'kernel_faults', numerator: 0, denominator: 1, status: 'IO_ERROR' }); };
      },
      afterRun: async (run, context) => {
        // The fault bit only if some failure names the kernel's IO_ERROR (every run notes failed_by_code).
        const codes = await failedByCode(context.deployment, context.admin);
        context.note('commands_failed', run.commandsByState.failed ?? 0);
        if (!Object.keys(codes).some((code) => code.includes('IO_ERROR'))) context.violation('fault', `no command failed with the kernel's IO_ERROR (failures by code: ${JSON.stringify(codes)})`);
      },
    },
    {
      name: 'clock-skew', matrixFault: 'clock_skew', cutsSessions: true,
      summary: `agent clocks set ${skewBeyondMs / 1000} s ahead and behind (beyond the gateway's ${clockOffsetLimits.offsetMsMax / 1000} s) and ${skewWithinMs / 1000} s ahead (within), every session cut: beyond is refused PROTO_CLOCK_SKEW, within is admitted`,
      inject: async (context) => {
        const ids = context.agents.map((a) => a.deviceId);
        const beyond = ids.slice(0, Math.min(2, Math.max(1, ids.length - 1)));
        const within = ids.filter((id) => !beyond.includes(id));
        const skews: Array<[string, number]> = beyond.map((id, i) => [id, i === 0 ? skewBeyondMs : -skewBeyondMs]);
        for (const id of within) skews.push([id, skewWithinMs]);
        context.pool.broadcast({ type: 'clock_skew', items: skews });
        await cutSessions(context);
        context.note('skew_ms', Object.fromEntries(skews));
        return async () => {
          // Before healing: what the gateway decided for each clock, from the agents' side.
          const settled = await waitFor(async () => {
            const facts = await context.pool.deviceFacts(ids);
            const refused = facts.filter((f) => beyond.includes(f.deviceId) && !f.ready && f.closeReasons.some((r) => r.includes('PROTO_CLOCK_SKEW')));
            const admitted = facts.filter((f) => within.includes(f.deviceId) && f.ready);
            return refused.length === beyond.length && admitted.length === within.length ? facts : undefined;
          }, skewSettleBoundMs, 250);
          const facts = await context.pool.deviceFacts(ids);
          context.note('agents_during_skew', facts.map((f) => ({ device: f.deviceId, ready: f.ready, close_reasons: f.closeReasons })));
          // Admission by clock is what presence shows: a skewed device refused, one within the bound online.
          if (settled === undefined) context.violation('presence', `within ${skewSettleBoundMs} ms the agents beyond the bound were not all refused PROTO_CLOCK_SKEW, or those within not all admitted`);
          context.pool.broadcast({ type: 'clock_skew', items: ids.map((id) => [id, 0]) });
        };
      },
    },
    {
      // A 1 s token is refused within 2 s of its issue (the run's verifier allows 1 s of skew), so
      // 3 s of commands after the fault starts show a refusal whatever the fault's length.
      name: 'jwt-expiry', matrixFault: 'expired_jwt', cutsSessions: false, minDurationMs: 6_000,
      summary: "the operator's logins give 1 s tokens during the fault (the run's verifier allows 1 s of skew): requests get 401 JWT_EXPIRED, the client logs in again and sends the same request once",
      inject: async (context) => {
        context.shortTokens = true;
        await context.api.logInAgain();
        return async () => { context.shortTokens = false; };
      },
      afterRun: async (run, context) => {
        const expired = run.counts.token_expired_relogins ?? 0;
        context.note('token_expired_relogins', expired);
        if (expired === 0) context.violation('fault', 'no request was refused JWT_EXPIRED: the token never expired during the run');
        // A request refused for its token never created anything; sent again once, it created one command.
        const rows = await context.deployment.stores.sql!.query<{ n: number | string }>('SELECT COUNT(*) AS n FROM commands WHERE created_by = ?', [context.admin]);
        const created = Number(rows[0]?.n ?? 0);
        context.note('commands_created', created);
        if (created !== (run.counts.commands_accepted ?? 0)) context.violation('at_most_once', `the control plane holds ${created} commands by the operator, who was answered ${run.counts.commands_accepted ?? 0} accepted`);
      },
    },
    {
      // The revocation ends the device's unfinished commands at once (canceled, API_DEVICE_REVOKED),
      // so the run keeps the usual TTL and drain. afterRun checks that no other device's command
      // was canceled or ended by its TTL, and that none of the device's is left unfinished.
      name: 'cert-revoked', matrixFault: 'revoked_certificate', cutsSessions: true,
      summary: `one connected device revoked through the control plane: its session closed within ${revokedCloseBoundMs / 1000} s (4003 TRUST_CERT_REVOKED), its reconnections refused, no command delivered to it after`,
      inject: async (context) => {
        const victim = context.agents[0]!;
        context.expectOffline(victim.deviceId);
        // Its certificate and key, for trying the gateway from outside as the device (the agents' directory goes with the run).
        const identity = await loadIdentity(agentPaths(victim.dir));
        const material = {
          deviceId: victim.deviceId, certPem: identity.certPem + identity.chainPem, keyPem: identity.keyPem, seed: identity.seed,
          publicKey: provider.publicKeyFromSeed(identity.seed), serialHex: normalizeSerialHex(parseCertificate(identity.certPem).serialNumber),
        };
        const before = (await context.pool.deviceFacts([victim.deviceId]))[0];
        const revokedAtMs = systemClock.nowMs();
        await context.deployment.controlPlane!.devices.revoke({ actor: context.admin, deviceId: victim.deviceId, reason: 'keyCompromise' });
        const closed = await waitFor(async () => {
          const facts = (await context.pool.deviceFacts([victim.deviceId]))[0];
          return facts !== undefined && !facts.ready ? facts : undefined;
        }, revokedCloseBoundMs, 50);
        const closedAfterMs = closed === undefined ? null : systemClock.nowMs() - revokedAtMs;
        context.note('revoked_device', victim.deviceId);
        context.note('session_closed_after_revocation_ms', closedAfterMs);
        // A revoked device that keeps a session, or takes a command, is access without valid credentials.
        if (closed === undefined) context.violation('no_unauthenticated_access', `the revoked device's session was still open ${revokedCloseBoundMs} ms after the revocation`);
        // One command for the revoked device, asked by the operator through the API: it must be
        // refused at creation. The workload's own commands reach the victim only by chance after
        // the revocation (none at all on a busy machine's short run), so this one is certain.
        const refusedCode = await context.api.call('POST', '/v1/commands', { device_id: victim.deviceId, opcode: 'EXEC_PING_KERNEL', args: {} })
          .then(() => 'created', (error: unknown) => (SdcError.is(error, 'HTTP_REFUSED') ? String(error.details.serverCode) : SdcError.is(error) ? error.code : 'error'));
        context.note('revoked_device_command', refusedCode);
        if (refusedCode === 'created') context.violation('no_unauthenticated_access', 'a command for the revoked device was created after the revocation');
        const deliveriesAtRevocation = closed?.deliveries ?? before?.deliveries ?? 0;
        return async () => {
          // Revocation does not heal. What held meanwhile: the agent kept being refused, and took no command.
          // A short fault may end before the agent tried again: wait (bounded) for a refusal to show.
          const refusedReason = (reasons: readonly string[]) => reasons.some((r) => r.includes('TRUST_CERT_REVOKED') || r.includes(String(closeCodes.revoked)));
          await waitFor(async () => {
            const seen = (await context.pool.deviceFacts([victim.deviceId]))[0];
            return seen !== undefined && refusedReason(seen.closeReasons) ? seen : undefined;
          }, revokedRefusalBoundMs, 100);
          const facts = (await context.pool.deviceFacts([victim.deviceId]))[0];
          context.note('revoked_device_close_reasons', facts?.closeReasons ?? []);
          if (facts?.ready) context.violation('no_unauthenticated_access', 'the revoked device has a session again');
          if (!refusedReason(facts?.closeReasons ?? [])) {
            context.violation('no_unauthenticated_access', `the revoked device's sessions closed for ${JSON.stringify(facts?.closeReasons ?? [])}, never TRUST_CERT_REVOKED`);
          }
          if ((facts?.deliveries ?? 0) > deliveriesAtRevocation) context.violation('no_unauthenticated_access', `the revoked device took ${(facts?.deliveries ?? 0) - deliveriesAtRevocation} command(s) after its session was closed`);
          // From outside, with the device's own certificate and key: the gateway answers TRUST_CERT_REVOKED.
          const outcome = await gatewayAnswer(context.gatewayUrl, context.materials.rootCaPem, context.materials, material);
          context.note('revoked_device_reconnect', outcome);
          if (outcome !== 'TRUST_CERT_REVOKED') context.violation('no_unauthenticated_access', `the revoked device's own certificate got ${outcome} from the gateway, not TRUST_CERT_REVOKED`);
        };
      },
      afterRun: async (_run, context) => {
        // Only the revoked device's commands may have been canceled; none may have ended by its TTL (this run's operator's).
        const victim = context.agents[0]!.deviceId;
        const rows = await context.deployment.stores.sql!.query<{ device_id: string; state: string; n: number | string }>(
          "SELECT device_id, state, COUNT(*) AS n FROM commands WHERE state IN ('expired', 'timed_out', 'canceled', 'queued', 'sent', 'ack_received', 'executing') AND created_by = ? GROUP BY device_id, state", [context.admin]);
        const byDevice: Record<string, Record<string, number>> = {};
        for (const r of rows) byDevice[r.device_id] = { ...byDevice[r.device_id], [r.state]: Number(r.n) };
        context.note('commands_not_run_by_device', byDevice);
        for (const [deviceId, states] of Object.entries(byDevice)) {
          const notCanceled = Object.entries(states).filter(([state]) => state !== 'canceled');
          if (deviceId !== victim && Object.keys(states).length > 0) context.violation('none_lost', `commands of ${deviceId}, which was not revoked, ended ${JSON.stringify(states)}`);
          // The revoked device's unfinished commands were canceled at the revocation, not left to their TTL.
          if (deviceId === victim && notCanceled.length > 0) context.violation('liveness', `commands of the revoked device not canceled at the revocation: ${JSON.stringify(states)}`);
        }
      },
    },
  ];
}
