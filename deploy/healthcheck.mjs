#!/usr/bin/env node
// The container's health probe (the Dockerfile's HEALTHCHECK and compose.yaml's healthchecks).
// Plain JavaScript on node's own modules: it starts in tens of milliseconds and loads nothing of sdc.
//
//   node deploy/healthcheck.mjs [TARGET]     TARGET defaults to $SDC_HEALTHCHECK_URL, else the API's /healthz
//
//   https://HOST:PORT/PATH   GET over TLS, trusting only our root CA ($SDC_HEALTHCHECK_CA, default
//                            /data/pki/root-ca.pem); healthy on 200. /healthz: the process serves
//                            HTTP; /readyz: it also reaches every store it needs (docs/api.md).
//   tcp://HOST:PORT          a TCP connection is accepted: a gateway-only process has no HTTP route
//                            (its port accepts device certificates only), so listening is what it can show.
//   none                     always healthy: a container that serves nothing (`sdc agent`, `sdc pki`).
//
// Exit 0 healthy, 1 not, with one line on stdout (docker keeps it in `docker inspect`).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';

const target = process.argv[2] ?? process.env.SDC_HEALTHCHECK_URL ?? 'https://localhost:8080/healthz';
const caPath = process.env.SDC_HEALTHCHECK_CA ?? '/data/pki/root-ca.pem';
/** Below compose's and the Dockerfile's 5 s timeout, so a hung probe is reported by us, not killed. */
const probeTimeoutMs = 4_000;

function done(healthy, line) {
  process.stdout.write(`${line}\n`);
  process.exit(healthy ? 0 : 1);
}

function probeHttps(url) {
  let ca;
  try {
    ca = readFileSync(caPath);
  } catch (error) {
    done(false, `cannot read the CA ${caPath}: ${error.code ?? error.message}`);
  }
  const req = request(url, { method: 'GET', ca, timeout: probeTimeoutMs }, (res) => {
    res.resume();
    done(res.statusCode === 200, `${url.pathname} answered ${res.statusCode}`);
  });
  req.on('timeout', () => req.destroy(new Error(`no answer within ${probeTimeoutMs} ms`)));
  req.on('error', (error) => done(false, `${url.href}: ${error.message}`));
  req.end();
}

function probeTcp(url) {
  const socket = connect({ host: url.hostname, port: Number(url.port), timeout: probeTimeoutMs });
  socket.on('connect', () => { socket.destroy(); done(true, `${url.host} accepts connections`); });
  socket.on('timeout', () => { socket.destroy(); done(false, `${url.host}: no connection within ${probeTimeoutMs} ms`); });
  socket.on('error', (error) => done(false, `${url.host}: ${error.message}`));
}

if (target === 'none') done(true, 'no probe for this container');
let url;
try {
  url = new URL(target);
} catch {
  done(false, `not a probe target: ${target} (https://HOST:PORT/PATH, tcp://HOST:PORT or none)`);
}
if (url.protocol === 'https:') probeHttps(url);
else if (url.protocol === 'tcp:' && url.port !== '') probeTcp(url);
else done(false, `not a probe target: ${target} (https://HOST:PORT/PATH, tcp://HOST:PORT or none)`);
