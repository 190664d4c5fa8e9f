import { base64urlFromBytes } from '../../../../core/crypto/bytes.js';
import { SdcError } from '../../../../core/errors/index.js';
import type { ControlPlaneServices } from '../../services.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import { ApprovalOutcome, ApproveBody, CancelBody, PendingPage, RejectBody, SigningKeyBody, SigningKeyView } from '../approval-schemas.js';
import { CommandParams, PageQuery } from '../schemas.js';
import { actors } from '../../context.js';
import type { SigningKey, SigningKeyProof } from '../../signing-keys.js';
import type { AuthRateLimiter } from '../rate-limit.js';

function keyView(key: SigningKey) {
  return { kid: key.kid, public_key: base64urlFromBytes(key.publicKey), user: key.userName, created_at_ms: key.createdAtMs };
}

/**
 * The approval flow (docs/policy.md "Approvals"): what waits, approve and reject with the
 * approver's signature, and each user's own approval signing key. The route role is the floor
 * (approver for decisions); the rule's own approver roles are checked by the service
 * (APPROVAL_ROLE_NOT_ALLOWED), as are the requester, duplicates, expiry and the signature.
 */
export const approvalRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices; readonly authLimiter: AuthRateLimiter }> = async (app, { services, authLimiter }) => {
  const { approvals, signingKeys } = services;

  app.get('/v1/approvals', {
    schema: { querystring: PageQuery, response: { 200: PendingPage } }, config: { auth: 'approver', summary: 'Commands waiting for approvals, newest first, with the decisions so far' },
  }, async (request) => approvals.listPending(request.query));

  app.post('/v1/commands/:id/approve', {
    schema: { params: CommandParams, body: ApproveBody, response: { 200: ApprovalOutcome } },
    config: { auth: 'approver', summary: 'Approve a pending command with a signature over the approval statement' },
  }, async (request) => {
    const { command_sha256: commandSha256, kid, expires_at_ms: expiresAtMs, signature } = request.body;
    return approvals.decide({ actor: principalOf(request), commandId: request.params.id, decision: 'approve', commandSha256, kid, expiresAtMs, signature });
  });

  app.post('/v1/commands/:id/reject', {
    schema: { params: CommandParams, body: RejectBody, response: { 200: ApprovalOutcome } },
    config: { auth: 'approver', summary: 'Reject a pending command (signed, with a reason); it ends rejected' },
  }, async (request) => {
    const { command_sha256: commandSha256, kid, expires_at_ms: expiresAtMs, signature, reason } = request.body;
    return approvals.decide({ actor: principalOf(request), commandId: request.params.id, decision: 'reject', commandSha256, kid, expiresAtMs, signature, reason });
  });

  app.post('/v1/commands/:id/cancel', {
    schema: { params: CommandParams, body: CancelBody, response: { 200: ApprovalOutcome } },
    config: { auth: 'operator', summary: 'Cancel a command waiting for approvals (its requester or an admin); it ends rejected, audited' },
    // The body is optional: a bare POST cancels without a reason (as /v1/alerts/{id}/ack).
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {}; },
  }, async (request) => {
    const reason = request.body?.reason;
    const command = await approvals.cancel({ actor: principalOf(request), commandId: request.params.id, ...(reason === undefined ? {} : { reason }) });
    return { released: false, command };
  });

  // Registering a key, first or replacement, needs the current password (security review
  // 2026-12-05, finding 4; docs/decisions/0005-approvals.md): otherwise a leaked token would let
  // its holder put their own key in place and sign approvals the device accepts.
  // Checking the password is a password guess like a login, and counted as one (the login
  // limiter, per address and per account). Refusals are audited: a token-only replacement is
  // what a stolen token looks like.
  app.put('/v1/users/me/signing-key', {
    schema: { body: SigningKeyBody, response: { 200: SigningKeyView } },
    config: { auth: 'viewer', summary: 'Register your approval signing key (Ed25519 public key) with current_password; the current key again needs none' },
  }, async (request) => {
    const name = principalOf(request).name;
    const currentPassword = request.body.current_password;
    try {
      let proof: SigningKeyProof = 'none';
      if (currentPassword !== undefined) {
        await authLimiter.guardLogin({ source: request.ip, account: name }, async () => {
          try {
            await services.auth.users.authenticate(name, currentPassword);
          } catch (error) {
            if (SdcError.is(error, 'API_LOGIN_FAILED')) throw new SdcError('API_CURRENT_PASSWORD_WRONG', 'the current password is wrong');
            throw error;
          }
        });
        proof = 'password';
      }
      const { key } = await signingKeys.register({ userName: name, publicKeyText: request.body.public_key, nowMs: services.context.clock.nowMs(), proof });
      await services.context.settleAudit();
      return keyView(key);
    } catch (error) {
      // API_RATE_LIMITED too (review 2026-12-05, finding 8): a guess refused by the login limits is
      // as much a sign of a stolen token as a wrong one, and audited like it.
      if (SdcError.is(error, 'APPROVAL_KEY_PROOF_REQUIRED') || SdcError.is(error, 'API_CURRENT_PASSWORD_WRONG') || SdcError.is(error, 'API_RATE_LIMITED')) {
        await services.context.audit.append({
          kind: 'user.signing_key_refused', actor: actors.user(name), subject: `user:${name}`, payload: { code: error.code, public_key: request.body.public_key },
        });
      }
      throw error;
    }
  });

  app.get('/v1/users/me/signing-key', {
    schema: { response: { 200: SigningKeyView } }, config: { auth: 'viewer', summary: 'Your current approval signing key' },
  }, async (request) => {
    const key = await signingKeys.current(principalOf(request).name);
    if (key === undefined) throw new SdcError('APPROVAL_KEY_UNKNOWN', 'you have no registered signing key');
    return keyView(key);
  });
};
