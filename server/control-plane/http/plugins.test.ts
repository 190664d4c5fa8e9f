import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import pino from 'pino';
import { initDeployment } from '../../materials/materials.js';
import { systemClock, systemRandom, systemScheduler } from '../../../runtime/system.js';
import { MemoryStreamBus } from '../../stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore } from '../../stores/kv/redis-key-value-store.js';
import { openSqlJsDatabase } from '../../stores/sql/sqljs-database.js';
import { createControlPlane, type ControlPlane } from '../control-plane.js';
import { openApi } from './openapi.js';
import { compileSchemasWhenMade } from './schema-compilers.js';

/**
 * How the HTTP app is composed (app.ts, http/routes/): the OpenAPI document names every route of
 * the resource plugins with its role, the authentication hook covers routes added from outside,
 * and a route that states no role is admin-only. Only sql.js and the embedded stores: this is
 * about plugin composition, not storage; the routes' behaviour runs on both store pairs in the
 * control-plane, alert and hardening suites.
 */

/** Every API route, with the least role it needs: a route added, removed or re-roled must change this list. */
const documentedRoutes = [
  'GET /.well-known/jwks.json public',
  'GET /openapi.json public',
  'GET /v1/alerts viewer',
  'GET /v1/approvals approver',
  'POST /v1/alerts/{id}/ack operator',
  'GET /v1/audit admin',
  'GET /v1/audit/verify admin',
  'GET /v1/blobs/* public',
  'PUT /v1/blobs/* public',
  'POST /v1/auth/login public',
  'POST /v1/auth/logout-all viewer',
  'GET /v1/commands viewer',
  'POST /v1/commands operator',
  'GET /v1/commands/{id} viewer',
  'POST /v1/commands/{id}/approve approver',
  'POST /v1/commands/{id}/cancel operator',
  'POST /v1/commands/{id}/reject approver',
  'GET /v1/crl public',
  'GET /v1/artifacts viewer',
  'GET /v1/artifacts/{id} operator',
  'DELETE /v1/artifacts/{id} operator',
  'POST /v1/artifacts/retention admin',
  'GET /v1/artifacts/keys admin',
  'POST /v1/artifacts/keys/rotate admin',
  'DELETE /v1/artifacts/keys/{key_id} admin',
  'POST /v1/devices/{id}/artifact-uploads public',
  'GET /v1/devices viewer',
  'GET /v1/devices/{id} viewer',
  'POST /v1/devices/{id}/pairing-tokens admin',
  'POST /v1/devices/{id}/renew public',
  'POST /v1/devices/{id}/revoke admin',
  'PUT /v1/devices/{id}/tags operator',
  'GET /v1/devices/{id}/telemetry viewer',
  'GET /v1/devices/{id}/compliance viewer',
  'POST /v1/enroll public',
  'POST /v1/pairing-tokens admin',
  'GET /v1/releases viewer',
  'POST /v1/releases operator',
  'GET /v1/releases/{id} viewer',
  'PUT /v1/releases/{id}/artifact operator',
  'POST /v1/releases/{id}/artifact-upload-url operator',
  'POST /v1/releases/{id}/artifact-upload-complete operator',
  'GET /v1/releases/{id}/targets-proposal operator',
  'POST /v1/releases/{id}/signatures operator',
  'POST /v1/releases/{id}/publish operator',
  'POST /v1/releases/{id}/revoke operator',
  'GET /v1/rollouts viewer',
  'GET /v1/approvals/rollouts approver',
  'POST /v1/rollouts operator',
  'GET /v1/rollouts/{id} viewer',
  'POST /v1/rollouts/{id}/pause operator',
  'POST /v1/rollouts/{id}/resume operator',
  'POST /v1/rollouts/{id}/abort operator',
  'POST /v1/rollouts/{id}/emergency-abort admin',
  'POST /v1/rollouts/{id}/approve approver',
  'POST /v1/rollouts/{id}/reject approver',
  'GET /v1/rollouts/{id}/resume-authority operator',
  'POST /v1/rollouts/{id}/resume-request operator',
  'POST /v1/rollouts/{id}/resume-request/approve approver',
  'POST /v1/rollouts/{id}/resume-request/reject approver',
  'GET /v1/tuf/metadata/{file} public',
  'GET /v1/tuf/targets/* public',
  'GET /v1/live viewer',
  'POST /v1/live/tickets viewer',
  'GET /v1/policy operator',
  'PUT /v1/policy admin',
  'POST /v1/policy/evaluate operator',
  'GET /v1/compliance viewer',
  'GET /v1/dead-letters operator',
  'GET /v1/dead-letters/streams operator',
  'GET /v1/dead-letters/streams/entries operator',
  'POST /v1/dead-letters/retry operator',
  'POST /v1/dead-letters/streams/discard operator',
  'POST /v1/dead-letters/streams/replay operator',
  'POST /v1/dead-letters/{id}/discard operator',
  'GET /v1/users admin',
  'POST /v1/users admin',
  'DELETE /v1/users/{name} admin',
  'PUT /v1/users/{name}/password viewer',
  'PUT /v1/users/{name}/role admin',
  'GET /v1/users/me/signing-key viewer',
  'PUT /v1/users/me/signing-key viewer',
];

interface Operation { readonly security: unknown[]; readonly 'x-sdc-role'?: string }

function routesOf(document: { paths: Record<string, Record<string, Operation>> }): string[] {
  return Object.entries(document.paths).flatMap(([path, operations]) => Object.entries(operations).map(([method, operation]) => {
    const role = operation.security.length === 0 ? 'public' : operation['x-sdc-role'];
    return `${method.toUpperCase()} ${path} ${role}`;
  })).sort();
}

describe('HTTP app composed of plugins', () => {
  let dir: string;
  let cp: ControlPlane;
  let closeStores: () => Promise<void>;
  const viewerPassword = 'viewer password 1';

  before(async () => {
    // Every route's schemas compiled when this app is made ready, as fastify does by default, so a
    // schema that does not compile fails here: elsewhere each is compiled on its route's first call
    // (schema-compilers.ts), and a route no test calls would otherwise not compile at all.
    compileSchemasWhenMade(true);
    dir = await mkdtemp(join(tmpdir(), 'sdc-http-plugins-'));
    const materials = await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
    const sql = await openSqlJsDatabase({ dataDir: join(dir, 'db') });
    const bus = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
    const kv = createEmbeddedKeyValueStore({ keyPrefix: 'http-plugins:' });
    closeStores = async () => { await bus.close(); await kv.close(); await sql.close(); };
    cp = await createControlPlane({
      materials, stores: { sql, bus, kv }, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger: pino({ level: 'silent' }),
      gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], persistJwtKeys: false, scryptParams: { N: 1024, r: 8, p: 1 },
    });
    // Added from outside after the app was built, as the deployment adds its probes: one public
    // without a summary (not part of the API document), one that states no role at all.
    cp.app.get('/probe', { config: { auth: 'public' } }, async () => ({ ok: true }));
    cp.app.get('/v1/no-role-stated', async () => ({ reached: true }));
    await cp.auth.users.add({ name: 'watcher', role: 'viewer', password: viewerPassword, nowMs: systemClock.nowMs() });
  });

  after(async () => {
    await cp.stop();
    await closeStores();
    await rm(dir, { recursive: true, force: true });
  });

  it('every route\'s request and response schemas compile (all at once here: compileSchemasWhenMade)', async () => {
    await cp.app.ready();
  });

  it('documents exactly the resource plugins\' routes, each with its role, and no HEAD twins or undocumented probes', async () => {
    const response = await cp.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(routesOf(response.json()), [...documentedRoutes].sort());
  });

  it('a route that states no role is admin-only: 401 without a token, 403 for a viewer', async () => {
    const anonymous = await cp.app.inject({ method: 'GET', url: '/v1/no-role-stated' });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(anonymous.json().error.code, 'API_UNAUTHENTICATED');
    const { token } = await cp.auth.login('watcher', viewerPassword);
    const viewer = await cp.app.inject({ method: 'GET', url: '/v1/no-role-stated', headers: { authorization: `Bearer ${token}` } });
    assert.equal(viewer.statusCode, 403, viewer.body);
    assert.equal((await cp.app.inject({ method: 'GET', url: '/probe' })).json().ok, true);
  });

  it('the authentication hook runs before a route\'s own validation: a bad query to a viewer route without a token is 401, not 400', async () => {
    const response = await cp.app.inject({ method: 'GET', url: '/v1/devices?limit=not-a-number' });
    assert.equal(response.statusCode, 401);
    const { token } = await cp.auth.login('watcher', viewerPassword);
    const validated = await cp.app.inject({ method: 'GET', url: '/v1/devices?limit=not-a-number', headers: { authorization: `Bearer ${token}` } });
    assert.equal(validated.statusCode, 400);
    assert.equal(validated.json().error.code, 'API_VALIDATION');
  });
});

describe('OpenAPI collector', () => {
  it('refuses to start when a documented route states no role', async () => {
    const app = Fastify({ logger: false });
    app.register(openApi, { info: { title: 'test', version: '1' } });
    app.register(async (child) => { child.get('/v1/roleless', { config: { summary: 'A route that forgot its role' } }, async () => ({})); });
    await assert.rejects(async () => { await app.ready(); }, (error: Error & { code?: string }) => error.code === 'API_INTERNAL' && /\/v1\/roleless/.test(error.message));
    await app.close();
  });
});
