// usage: node prof.mjs <distroot> <agents> <model|real> <out.cpuprofile>
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
const [root, agentsS, crypto, out] = process.argv.slice(2);
const { runSimulation } = await import(`${root}/dist/sim/run.js`);
const { loadScenario, builtinScenarioPath } = await import(`${root}/dist/sim/scenario.js`);
const scenario = await loadScenario(builtinScenarioPath('standard'));
const agents = Number(agentsS);
const s = new Session(); s.connect();
await s.post('Profiler.enable'); await s.post('Profiler.setSamplingInterval', { interval: 500 });
await s.post('Profiler.start');
let stopped = false; let stopP;
const t0 = process.cpuUsage();
const res = await runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents, safetyMs: 3000, crypto, onProgress: (p) => {
  if (!stopped && p.connected === p.agents) { stopped = true; const c = process.cpuUsage(t0); console.error('window cpu ms', (c.user + c.system) / 1000); stopP = s.post('Profiler.stop').then(({ profile }) => writeFileSync(out, JSON.stringify(profile))); }
}});
await stopP;
const t = res.timing;
console.log(JSON.stringify({ startup_ms_per_agent: (t.setupCpuMs + t.connectCpuMs) / agents, setup: t.setupCpuMs, connect: t.connectCpuMs, stmts: t.connectSqlStatements, commits: t.connectSqlCommits, hash: res.traceHash, viol: res.violations.length, ed: t.startupEd25519 }));
