#!/bin/bash
# run.sh TREE LABEL [duration]: one embedded K=1 ingest run, prints one TSV line
TREE=$1; LABEL=$2; DUR=${3:-6s}
cd $TREE
L1=$(cut -d' ' -f1 /proc/loadavg)
nice -n 10 node bin/sdc.js bench ingest --json --modes session-mac --samples-per-frame 1 --duration $DUR 2>/dev/null > /tmp/h4/last.json
L2=$(cut -d' ' -f1 /proc/loadavg)
node -e 'const j=require("/tmp/h4/last.json");const r=j.results[0];const v=r.samples_per_s/r.ratio_to_ed25519_verify;console.log([process.argv[1],new Date().toISOString().slice(11,19),process.argv[2]+"-"+process.argv[3],r.service_cpu_us_per_sample.toFixed(1),r.cpu_us_per_sample.toFixed(1),Math.round(r.samples_per_s),r.ratio_to_ed25519_verify.toFixed(2),Math.round(v),r.backlog_at_end,r.rows_per_telemetry_insert.toFixed(0)].join("\t"))' $LABEL $L1 $L2 | tee -a /tmp/h4/runs.tsv
