// k6/http in Node: synchronous requests, each in a child process (http-child.mjs), trusting only
// the CA file the test names, as SSL_CERT_FILE makes k6 do. Every request is recorded.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const childPath = fileURLToPath(new URL('./http-child.mjs', import.meta.url));

function send(method, url, body, params) {
  const shim = globalThis.__k6shim;
  const output = execFileSync(process.execPath, [childPath], {
    input: JSON.stringify({ method, url, body: body ?? null, headers: params?.headers ?? {}, caFile: shim.caFile }), encoding: 'utf8', timeout: 90_000,
  });
  const { status, body: text } = JSON.parse(output);
  shim.requests.push({ method, url, status, headers: params?.headers ?? {}, tags: params?.tags ?? {} });
  return {
    status, body: text,
    json(selector) {
      const value = JSON.parse(text);
      return selector === undefined ? value : selector.split('.').reduce((o, k) => (o == null ? undefined : o[k]), value);
    },
  };
}

export default {
  post: (url, body, params) => send('POST', url, body, params),
  get: (url, params) => send('GET', url, undefined, params),
};
