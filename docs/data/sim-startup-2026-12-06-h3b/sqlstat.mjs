const [root, agentsS] = process.argv.slice(2);
const { runSimulation } = await import(`${root}/dist/sim/run.js`);
const { loadScenario, builtinScenarioPath } = await import(`${root}/dist/sim/scenario.js`);
const scenario = await loadScenario(builtinScenarioPath('standard'));
const agents = Number(agentsS); let snap;
const res = await runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents, safetyMs: 3000, crypto: 'model', onProgress: (p) => {
  if (!snap && p.connected === p.agents) snap = new Map([...(globalThis.__sqlStats ?? [])].map(([k, v]) => [k, { ...v }]));
}});
const t = res.timing;
console.log(JSON.stringify({ startup_ms_per_agent: (t.setupCpuMs + t.connectCpuMs) / agents, setup: t.setupCpuMs, connect: t.connectCpuMs, stmts: t.connectSqlStatements, commits: t.connectSqlCommits, hash: res.traceHash }));
let tot = 0; for (const [k, v] of snap) tot += v.us;
console.log('sql cpu per agent us', (tot / agents).toFixed(0));
for (const [k, v] of [...snap].sort((a, b) => b[1].us - a[1].us).slice(0, 25)) console.log((v.us / agents).toFixed(1).padStart(7), String(v.n).padStart(7), (v.us / v.n).toFixed(1).padStart(7), k);
