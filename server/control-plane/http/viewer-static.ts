import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SdcError } from '../../../core/errors/index.js';
import type { FastifyReply } from 'fastify';
import type { RoutesPlugin } from './plugin.js';

/**
 * The operator console (viewer/, bundled by scripts/build-viewer.mjs) at `/`, on the API's own
 * origin, so the console calls the API and /v1/live without CORS and the JWT never leaves the
 * origin. The pages carry a strict Content-Security-Policy: scripts, styles and connections only
 * from this origin, no inline code, nothing may frame the console.
 */
export const viewerContentSecurityPolicy = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/**
 * The files the bundle has (scripts/build-viewer.mjs viewerFiles) and their types; nothing else is
 * served. A Map, not an object: the name is the client's, and an object's lookup also finds
 * `constructor`, `__proto__`, `toString`... on its prototype (review h1, F8: answered 503 "not built").
 */
const viewerAssets: ReadonlyMap<string, string> = new Map([
  ['index.html', 'text/html; charset=utf-8'],
  ['app.js', 'text/javascript; charset=utf-8'],
  ['app.css', 'text/css; charset=utf-8'],
]);

/**
 * Where the bundle is: `dist/viewer/` beside the compiled server. From dist/ this module is
 * dist/server/control-plane/http/, whose root holds build-info.json; run from the sources (tsx),
 * the root is the checkout and the bundle is under its dist/ (npm run build:viewer after a change).
 */
export function defaultViewerDir(): string {
  // SDC_VIEWER_DIR serves another build (a test's, or an operator's own).
  const override = process.env.SDC_VIEWER_DIR;
  if (override !== undefined && override !== '') return override;
  const root = new URL('../../../', import.meta.url);
  const built = existsSync(new URL('build-info.json', root));
  return fileURLToPath(new URL(built ? 'viewer/' : 'dist/viewer/', root));
}

const securityHeaders = {
  'content-security-policy': viewerContentSecurityPolicy,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

/**
 * Each request reads its file, so a rebuilt bundle is served without a restart (three small
 * files; the page loads each once). Public: the console is code, the data stays behind the API's
 * tokens. No summary, so the routes are not part of the OpenAPI document.
 */
export const viewerStatic: RoutesPlugin<{ readonly viewerDir?: string }> = async (app, options) => {
  const serve = async (name: string, reply: FastifyReply) => {
    const dir = options.viewerDir ?? defaultViewerDir();
    const type = viewerAssets.get(name);
    if (type === undefined) throw new SdcError('API_NOT_FOUND', 'no such file in the console');
    let body: Buffer;
    try {
      body = await readFile(`${dir}/${name}`);
    } catch (error) {
      // Where the server looked (a directory of the server's machine) is for its operator, in the
      // log; the answer says only what is wrong (security review 2026-12-05, finding 9).
      reply.log.warn({ file: name, dir, fsCode: (error as { code?: unknown }).code }, 'the operator console is not built: run npm run build:viewer');
      throw new SdcError('API_VIEWER_NOT_BUILT', 'the operator console is not built on this server (its log says where it looked)');
    }
    // The page is always fetched again (it names the bundle); the bundle may be cached briefly.
    return reply.headers({ ...securityHeaders, 'content-type': type, 'cache-control': name === 'index.html' ? 'no-cache' : 'max-age=300' }).send(body);
  };
  app.get('/', { config: { auth: 'public' } }, async (_request, reply) => serve('index.html', reply));
  app.get<{ Params: { file: string } }>('/viewer/:file', { config: { auth: 'public' } }, async (request, reply) => serve(request.params.file, reply));
};
