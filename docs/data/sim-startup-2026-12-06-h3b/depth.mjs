const [root, agentsS] = process.argv.slice(2);
const { runSimulation } = await import(`${root}/dist/sim/run.js`);
const { loadScenario, builtinScenarioPath } = await import(`${root}/dist/sim/scenario.js`);
const scenario = await loadScenario(builtinScenarioPath('standard'));
const agents = Number(agentsS); let snap;
const res = await runSimulation({ scenario, scenarioRef: 'standard', seed: 1, agents, safetyMs: 3000, crypto: 'model', onProgress: (p) => {
  if (!snap && p.connected === p.agents) snap = new Map(globalThis.__mutexDepth);
}});
console.log(res.traceHash.slice(0,16), [...snap].sort((a,b)=>a[0]-b[0]).map(([k,v])=>`${k}:${v}`).join(' '));
