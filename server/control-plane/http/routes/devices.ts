import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { PresentedClientCertificate } from '../../devices.js';
import { latestRevisionLocked } from '../../policy-store.js';
import type { ControlPlaneServices } from '../../services.js';
import type { SqlExecutor } from '../../../stores/sql/sql-port.js';
import { principalOf } from '../authentication.js';
import type { RoutesPlugin } from '../plugin.js';
import type { AuthRateLimiter } from '../rate-limit.js';
import { SdcError } from '../../../../core/errors/index.js';
import type { Policy } from '../../../../core/protocol/policy.js';
import { deviceIdsFromPrefix } from '../../../../trust/pairing-tokens.js';
import { DeviceParams, EnrollBody, PairingTokenBatchBody, PairingTokenBody, RenewBody, RevokeBody } from '../schemas.js';
import { DeviceListQuery, DevicePage, DeviceTagsBody, DeviceTagsView, DeviceView } from '../policy-schemas.js';

/**
 * The TLS client certificate of the connection, if any. The HTTPS listener requests one but does
 * not require it, and accepts any (rejectUnauthorized: false): only the renewal route uses it, and
 * verifies it itself. Over plain HTTP (or inject) there is none.
 */
function presentedClientCertificate(request: FastifyRequest): PresentedClientCertificate | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const certificate = socket.getPeerCertificate(false);
  const raw = (certificate as { raw?: unknown } | null)?.raw;
  return raw instanceof Uint8Array && raw.length > 0 ? { certDer: new Uint8Array(raw) } : undefined;
}

/** The ids a bulk pairing request names: its list, or its prefix and count; exactly one of the two. */
function batchDeviceIds(body: PairingTokenBatchBody): string[] {
  const listed = body.device_ids !== undefined;
  const generated = body.prefix !== undefined || body.count !== undefined || body.first !== undefined;
  if (listed === generated || (generated && (body.prefix === undefined || body.count === undefined))) {
    throw new SdcError('API_VALIDATION', 'give either device_ids, or prefix and count (and optionally first)');
  }
  const ids = listed ? body.device_ids! : deviceIdsFromPrefix({ prefix: body.prefix!, count: body.count!, ...(body.first === undefined ? {} : { first: body.first }) });
  if (new Set(ids).size !== ids.length) throw new SdcError('API_VALIDATION', 'device_ids names a device more than once');
  return ids;
}

/** The tags any rule of this policy selects devices by (allow and deny alike), sorted. */
export function policyNamedTags(policy: Policy): string[] {
  return [...new Set(policy.rules.flatMap((rule) => (rule.devices === '*' ? [] : rule.devices.tags ?? [])))].sort();
}

/**
 * The check an operator's tag change must pass: it may add or remove only tags no rule of the
 * current policy names; API_DEVICE_TAG_POLICY_NAMED names the ones it touched and the revision.
 */
/** A newer policy revision was found inside the tag change's transaction: judged again with it (rolled back meanwhile). */
class PolicyMovedOn extends Error {}

/** Tag changes tried when policy revisions keep arriving under them; past it POLICY_REVISION_STALE (409), nothing changed. */
const tagChangeAttemptsMax = 3;

/**
 * The guard for a non-admin's tag change: refuses adding or removing a tag the policy selects on.
 * Judged against the revision in force when the change commits (review finding 4, 2026-12-05):
 * the policy is loaded before the transaction, and inside it the newest revision is read with a
 * lock (latestRevisionLocked) that a new revision's insert waits for. If a revision was stored in
 * between, the change rolls back and is judged again with it, so a deny rule on `prod` committed
 * while an operator removes `prod` is never skipped.
 */
async function policyTagGuard(services: ControlPlaneServices, who: { actor: string; role: string; deviceId: string }): Promise<(previous: readonly string[], next: readonly string[], tx: SqlExecutor) => Promise<void>> {
  const { policy, revision } = await services.policy.current();
  const named = new Set(policyNamedTags(policy));
  return async (previous, next, tx) => {
    if (await latestRevisionLocked(tx) !== revision) throw new PolicyMovedOn();
    const touched = [...previous.filter((tag) => !next.includes(tag)), ...next.filter((tag) => !previous.includes(tag))].filter((tag) => named.has(tag)).sort();
    if (touched.length === 0) return;
    throw new SdcError('API_DEVICE_TAG_POLICY_NAMED', `${who.actor} (${who.role}) may not add or remove ${touched.join(', ')} on device ${who.deviceId}: policy revision ${revision} selects devices by ${touched.length === 1 ? 'this tag' : 'these tags'}; an admin may`, {
      deviceId: who.deviceId, tags: touched.join(','), revision,
    });
  };
}

/** Devices and their certificates: listing, pairing, enrollment, renewal, revocation and the CRL. */
export const deviceRoutes: RoutesPlugin<{ readonly services: ControlPlaneServices; readonly authLimiter: AuthRateLimiter }> = async (app, { services, authLimiter }) => {
  const { devices } = services;

  app.get('/v1/devices', {
    schema: { querystring: DeviceListQuery, response: { 200: DevicePage } }, config: { auth: 'viewer', summary: 'List devices (tag: only those with the tag), each with its newest risk score' },
  }, async (request) => devices.list(request.query));

  app.put('/v1/devices/:id/tags', {
    schema: { params: DeviceParams, body: DeviceTagsBody, response: { 200: DeviceTagsView } },
    config: {
      auth: 'operator',
      summary: 'Replace the device\'s tags (group:NAME tags are its groups); audited. Adding or removing a tag a policy rule selects on needs an admin (API_DEVICE_TAG_POLICY_NAMED)',
    },
  }, async (request) => {
    const principal = principalOf(request);
    const deviceId = request.params.id;
    // Tags the policy selects on are security attributes (decision 0013): an admin's deny or
    // approval rule on a tag must not be escapable by an operator dropping the tag, nor an
    // allow rule reachable by adding one. Judged against the revision in force at the commit.
    if (principal.role === 'admin') return devices.setTags({ actor: principal.name, deviceId, tags: request.body.tags });
    for (let attempt = 1; ; attempt += 1) {
      const guard = await policyTagGuard(services, { actor: principal.name, role: principal.role, deviceId });
      try {
        return await devices.setTags({ actor: principal.name, deviceId, tags: request.body.tags, guard });
      } catch (error) {
        if (error instanceof PolicyMovedOn) {
          if (attempt < tagChangeAttemptsMax) continue;
          throw new SdcError('POLICY_REVISION_STALE', `the policy changed ${attempt} times while the tags of device ${deviceId} were being changed; nothing changed, try again`, { deviceId, attempts: attempt });
        }
        if (SdcError.is(error, 'API_DEVICE_TAG_POLICY_NAMED')) request.log.warn({ code: error.code, actor: principal.name, role: principal.role, deviceId, ...error.details }, 'device tag change refused');
        throw error;
      }
    }
  });

  app.get('/v1/devices/:id', {
    schema: { params: DeviceParams, response: { 200: DeviceView } }, config: { auth: 'viewer', summary: 'One device, with presence, certificate and newest risk score' },
  }, async (request) => devices.get(request.params.id));

  app.post('/v1/devices/:id/pairing-tokens', {
    schema: { params: DeviceParams, body: PairingTokenBody }, config: { auth: 'admin', summary: 'Create a one-time pairing token (shown once)' },
  }, async (request, reply) => {
    const { ttl_ms: ttlMs } = request.body;
    const created = await devices.createPairingToken({ actor: principalOf(request).name, deviceId: request.params.id, ...(ttlMs === undefined ? {} : { ttlMs }) });
    return reply.status(201).header('cache-control', 'no-store').send(created);
  });

  app.post('/v1/pairing-tokens', {
    schema: { body: PairingTokenBatchBody },
    config: { auth: 'admin', summary: 'Create one-time pairing tokens for many devices at once (device_ids, or prefix + count); shown once' },
  }, async (request, reply) => {
    const { ttl_ms: ttlMs } = request.body;
    const deviceIds = batchDeviceIds(request.body);
    const items = await devices.createPairingTokens({ actor: principalOf(request).name, deviceIds, ...(ttlMs === undefined ? {} : { ttlMs }) });
    return reply.status(201).header('cache-control', 'no-store').send({ items });
  });

  app.post('/v1/devices/:id/revoke', {
    schema: { params: DeviceParams, body: RevokeBody }, config: { auth: 'admin', summary: 'Revoke the device certificate' },
  }, async (request) => {
    const { reason } = request.body;
    return devices.revoke({ actor: principalOf(request).name, deviceId: request.params.id, ...(reason === undefined ? {} : { reason }) });
  });

  app.post('/v1/enroll', {
    schema: { body: EnrollBody }, config: { auth: 'public', summary: 'Enroll a device: one-time token + CSR for a certificate' },
  }, async (request, reply) => {
    const { device_id: deviceId, token, csr_pem: csrPem } = request.body;
    // The token is looked up before the limits (SHA-256, one read by key; no CSR work): a request
    // whose token holds for this device is never refused for what others did (decision 0020).
    const tokenHolds = await devices.pairingTokenHolds({ deviceId, token });
    const answer = await authLimiter.guardEnrollment({ source: request.ip, deviceId, tokenHolds }, () => devices.enroll({ deviceId, token, csrPem }));
    return reply.status(201).send(answer);
  });

  // Public as far as bearer tokens go: the device authenticates with its certificate in the TLS handshake.
  app.post('/v1/devices/:id/renew', {
    schema: { params: DeviceParams, body: RenewBody },
    config: { auth: 'public', summary: 'Renew a device certificate: CSR + the current certificate as the TLS client certificate; rate-limited per device once its certificate verified, and per address on refused attempts (API_RATE_LIMITED), at most 6 certificates a device a day (API_RENEWAL_TOO_SOON)' },
  }, async (request, reply) => {
    const deviceId = request.params.id;
    // The per-device count is spent only after the certificate verified for this device
    // (`authenticated`): an anonymous caller naming the device cannot lock it out.
    const answer = await authLimiter.guardRenewal({ source: request.ip, deviceId },
      (authenticated) => devices.renew({ deviceId, csrPem: request.body.csr_pem, presented: presentedClientCertificate(request), authenticated }));
    return reply.status(201).send(answer);
  });

  // Public: the CRL is signed, and gateways on other hosts fetch it (sdc gateway --crl-url, decision
  // 0021). A cache may keep it but must ask again each time: a revocation re-signs it at once.
  app.get('/v1/crl', {
    config: { auth: 'public', summary: 'The current certificate revocation list (PEM, signed by the intermediate CA; not cached without revalidation)' },
  }, async (_request, reply) => reply.header('content-type', 'application/x-pem-file').header('cache-control', 'public, no-cache').send(await devices.crlPem()));
};
