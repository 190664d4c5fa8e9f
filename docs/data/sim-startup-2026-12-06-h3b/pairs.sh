#!/bin/bash
# Alternating pairs (h3, afternoon): base = dc2114e, after = dc2114e + the sql.js transaction statements compiled once and the statement cache without re-insertion; sdc sim 10,000 agents modelled, 3 s.
# start-up per agent = (setupCpuMs + connectCpuMs) / 10000
run() { # tree
  local l=$(cut -d' ' -f1-2 /proc/loadavg) t0=$(date -u +%H:%M:%S)
  local r=$(cd /tmp/h3/$1 && nice -n 10 node bin/sdc.js sim --scenario standard --agents ${AGENTS:-10000} --duration 3s --seed 1 --crypto ${CRYPTO:-model} --json 2>/dev/null)
  local s=$(echo "$r" | grep -o '"setupCpuMs":[0-9]*' | cut -d: -f2) c=$(echo "$r" | grep -o '"connectCpuMs":[0-9]*' | cut -d: -f2) h=$(echo "$r" | grep -o '"traceHash":"[0-9a-f]\{16\}' | cut -d'"' -f4) v=$(echo "$r" | grep -o '"violations":\[[^]]*\]' | head -c 30)
  echo "$t0 $1 load=[$l] setup=$s connect=$c per_agent_ms=$(echo "scale=3; ($s+$c)/${AGENTS:-10000}" | bc) hash=$h $v"
}
for t in base after; do (cd /tmp/h3/$t && node --input-type=module -e "import {readBuildInfo, buildIsCurrent} from './bin/build-state.js'; const i = readBuildInfo(process.cwd()); if (!(i && buildIsCurrent(process.cwd(), i))) { console.log('STALE $t'); process.exit(1); }") || exit 1; done
for i in $(seq 1 ${PAIRS:-3}); do
  if [ $((i % 2)) -eq 1 ]; then run base; run after; else run after; run base; fi
done
