// One HTTPS request for the k6/http shim (k6's http calls are synchronous; Node's are not, so
// the shim runs each in this child and waits): request JSON on stdin, {status, body} on stdout.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; }).on('end', () => {
  const r = JSON.parse(input);
  const req = request(r.url, { method: r.method, headers: r.headers, ca: readFileSync(r.caFile, 'utf8'), timeout: 60_000 }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => { body += chunk; }).on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body })));
  });
  req.on('error', (error) => process.stdout.write(JSON.stringify({ status: 0, body: String(error) })));
  if (r.body !== null) req.write(r.body);
  req.end();
});
