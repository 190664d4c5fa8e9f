#!/usr/bin/env node
// A stand-in for the k6 executable, for bench/k6/ci-target.test.ts (k6 cannot be installed on the
// development machines): `fake-k6.mjs run [-e K=V ...] SCRIPT`, as ci-target.ts calls k6. It runs
// the script in Node with k6's modules shimmed, against the deployment ci-target started:
// - api.js: setup() and one iteration (run-api.mjs), trusting SSL_CERT_FILE's CA as k6 does;
// - agent.js: one process per VU (run-agent.mjs), VUs = the scenario's largest stage target, at
//   most the devices in SDC_AGENTS (k6 leaves VUs beyond them idle), each one device session.
// Not k6: no executor schedule and no threshold expressions. In their place it exits 99 when a
// check failed or a command did not succeed (api.js), or when a VU did not authenticate, a frame
// was refused or a socket failed (agent.js); else 0.
// Every run appends one JSON line to SDC_FAKE_K6_LOG (its argv, the -e variables, what it read and
// what the VUs recorded), for the test to read after ci-target has removed its files.
// SDC_FAKE_K6_EXIT="agent.js=99" makes that script's run exit 99 after doing its work;
// SDC_FAKE_K6_SKIP="agent.js" runs nothing for that script (the record says skipped).
import { execFile } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const nodeCheck = fileURLToPath(new URL('.', import.meta.url));
const runLimitMs = 120_000;

function usage(message) {
  process.stderr.write(`fake-k6: ${message}\n`);
  process.exit(2);
}

const argv = process.argv.slice(2);
if (argv[0] !== 'run') usage(`expected "run", got ${JSON.stringify(argv[0])}`);
const vars = {};
let script;
for (let i = 1; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === '-e' || arg === '--env') {
    const pair = argv[++i] ?? usage(`${arg} without a value`);
    const eq = pair.indexOf('=');
    if (eq <= 0) usage(`${arg} ${pair}: expected NAME=VALUE`);
    vars[pair.slice(0, eq)] = pair.slice(eq + 1);
  } else if (arg.startsWith('-')) {
    usage(`option ${arg} is not one the stand-in knows`);
  } else if (script === undefined) {
    script = arg;
  } else {
    usage(`a second script ${arg}`);
  }
}
if (script === undefined) usage('no script');

/** Runs a node-check runner with the k6 variables in its environment; its JSON output. */
function runNode(runner, env) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', `${nodeCheck}register.mjs`, `${nodeCheck}${runner}`], {
      env: { PATH: process.env.PATH ?? '', ...vars, ...env }, timeout: runLimitMs, maxBuffer: 16 * 1024 * 1024,
    }, (error, stdout, stderr) => (error ? reject(new Error(`${runner}: ${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout))));
  });
}

const name = basename(script);
const record = { argv, vars, name, ssl_cert_file: process.env.SSL_CERT_FILE ?? null, password_in_env: Boolean(process.env.SDC_PASSWORD) };
let status;
const skipped = (process.env.SDC_FAKE_K6_SKIP ?? '').split(',').includes(name);
try {
  if (skipped) {
    record.skipped = true;
    status = 0;
  } else if (name === 'api.js') {
    const { shim } = await runNode('run-api.mjs', { SDC_CA_FILE: process.env.SSL_CERT_FILE ?? '', SDC_PASSWORD: process.env.SDC_PASSWORD ?? '', SDC_ITERATIONS: '1' });
    const succeeded = shim.metrics.sdc_command_succeeded ?? [];
    record.checks = shim.checks;
    record.commands_succeeded = succeeded.filter((s) => s.value === 1).length;
    status = succeeded.length > 0 && succeeded.every((s) => s.value === 1) && shim.checks.every((c) => c.ok) ? 0 : 99;
  } else if (name === 'agent.js') {
    const manifest = JSON.parse(readFileSync(vars.SDC_AGENTS ?? usage('agent.js needs -e SDC_AGENTS'), 'utf8'));
    record.agents = manifest.agents.map((a) => ({
      device_id: a.device_id, dir: a.dir,
      // What k6 would open(): the files must be there, each a PEM block.
      files: Object.fromEntries(['device.key', 'device.pem', 'chain.pem'].map((f) => [f, readFileSync(`${a.dir}/${f}`, 'utf8').startsWith('-----BEGIN ')])),
    }));
    const definitions = JSON.parse(readFileSync(`${nodeCheck}../scenarios.json`, 'utf8'));
    const definition = definitions.scenarios[vars.SDC_SCENARIO ?? 'agent-sessions'] ?? usage(`no scenario ${vars.SDC_SCENARIO}`);
    const vus = Math.min(Math.max(0, ...definition.stages.map((s) => s.target_vus)), manifest.agents.length);
    const runs = await Promise.all(Array.from({ length: vus }, (_, i) => runNode('run-agent.mjs', { SDC_VU: String(i + 1) })));
    record.vus = runs.map(({ vu, shim }) => ({
      vu, auth_ok: (shim.metrics.sdc_auth_ok ?? []).map((s) => s.value), frames_refused: (shim.metrics.sdc_frames_refused ?? []).length,
      commands_answered: (shim.metrics.sdc_commands_answered ?? []).length, errors: shim.errors, closed: shim.closed,
    }));
    status = record.vus.every((v) => v.auth_ok.length > 0 && v.auth_ok.every((ok) => ok === 1) && v.frames_refused === 0 && v.errors.length === 0) ? 0 : 99;
  } else {
    usage(`no stand-in for ${name}`);
  }
} catch (error) {
  record.error = String(error instanceof Error ? error.message : error);
  status = 1;
}
const forced = (process.env.SDC_FAKE_K6_EXIT ?? '').split(',').map((p) => p.split('=')).find(([n]) => n === name);
if (forced !== undefined) status = Number(forced[1]);
record.status = status;
if (process.env.SDC_FAKE_K6_LOG) appendFileSync(process.env.SDC_FAKE_K6_LOG, `${JSON.stringify(record)}\n`);
process.stderr.write(`fake-k6: ${name} exited ${status}\n`);
process.exit(status);
