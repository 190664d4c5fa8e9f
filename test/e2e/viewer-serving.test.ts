// The operator console as the control plane serves it: `npm run build:viewer`'s bundle at `/`,
// with a strict Content-Security-Policy, and a bundle that is the console (not just any file).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeHarness, sqlJsTarget, type Harness } from '../../server/control-plane/test-support.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

describe('the control plane serves the operator console', () => {
  let h: Harness;
  let viewerDir: string;
  let previousDir: string | undefined;

  before(async () => {
    viewerDir = join(await mkdtemp(join(tmpdir(), 'sdc-viewer-')), 'viewer');
    const built = spawnSync(process.execPath, [join(repoRoot, 'scripts/build-viewer.mjs'), '--out-dir', viewerDir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(built.status, 0, built.stderr);
    previousDir = process.env.SDC_VIEWER_DIR;
    process.env.SDC_VIEWER_DIR = viewerDir;
    h = await makeHarness(sqlJsTarget);
  });
  after(async () => {
    await h?.close();
    if (previousDir === undefined) delete process.env.SDC_VIEWER_DIR;
    else process.env.SDC_VIEWER_DIR = previousDir;
    await rm(join(viewerDir, '..'), { recursive: true, force: true });
  });

  it('answers / with the page under a CSP that allows only same-origin code and no inline script', async () => {
    const page = await h.cp.app.inject({ method: 'GET', url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    // Every script is an external same-origin file: nothing inline for the CSP to have to allow.
    const scripts = [...page.body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1);
    assert.match(scripts[0]![1]!, /src="\/viewer\/app\.js"/);
    assert.equal(scripts[0]![2]!.trim(), '');
    assert.doesNotMatch(page.body, /\son[a-z]+=/i);
  });

  it('serves the bundle the page names: the console\'s elements, and its stylesheet', async () => {
    const script = await h.cp.app.inject({ method: 'GET', url: '/viewer/app.js' });
    assert.equal(script.statusCode, 200);
    assert.match(String(script.headers['content-type']), /^text\/javascript/);
    assert.match(script.body, /customElements\.define\("sdc-app"/);
    assert.match(script.body, /\/v1\/auth\/login/);
    const style = await h.cp.app.inject({ method: 'GET', url: '/viewer/app.css' });
    assert.equal(style.statusCode, 200);
    assert.match(String(style.headers['content-type']), /^text\/css/);
    assert.match(style.body, /\.uplot/);
  });

  it('serves nothing else from the folder, and keeps the console out of the API description', async () => {
    for (const url of ['/viewer/../package.json', '/viewer/app.js.map', '/viewer/index.html.bak', '/viewer/%2e%2e%2fpackage.json']) {
      const answer = await h.cp.app.inject({ method: 'GET', url });
      assert.equal(answer.statusCode, 404, url);
      assert.equal(JSON.parse(answer.body).error.code, 'API_NOT_FOUND', url);
    }
    const doc = JSON.parse((await h.cp.app.inject({ method: 'GET', url: '/openapi.json' })).body) as { paths: Record<string, unknown> };
    assert.equal(Object.keys(doc.paths).some((path) => path === '/' || path.startsWith('/viewer')), false);
  });

  it('says how to build the console when it is not built, with a typed error', async () => {
    process.env.SDC_VIEWER_DIR = join(viewerDir, 'missing');
    try {
      const answer = await h.cp.app.inject({ method: 'GET', url: '/' });
      assert.equal(answer.statusCode, 503);
      const error = JSON.parse(answer.body).error as { code: string; message: string };
      assert.equal(error.code, 'API_VIEWER_NOT_BUILT');
      // The answer names no directory of the server (security review 2026-12-05, finding 9); the log does.
      assert.match(error.message, /not built/);
      assert.ok(!error.message.includes(viewerDir), error.message);
      assert.ok(!error.message.includes('/'), error.message);
    } finally {
      process.env.SDC_VIEWER_DIR = viewerDir;
    }
  });
});
