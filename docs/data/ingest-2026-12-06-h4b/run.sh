#!/bin/bash
# run.sh TREE LABEL STORES(embedded|redis): one ingest run at K = 1 and 32, one TSV line per K
TREE=$1; LABEL=$2; ST=$3
cd $TREE
L1=$(cut -d' ' -f1 /proc/loadavg)
EXTRA=""
if [ "$ST" = redis ]; then redis-cli -n 7 flushdb >/dev/null; mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS h4b_ingest; CREATE DATABASE h4b_ingest"; EXTRA="--redis redis://127.0.0.1:6379/7 --mysql mysql://root@127.0.0.1:3306/h4b_ingest"; fi
nice -n 10 node bin/sdc.js bench ingest --json --modes session-mac --samples-per-frame 1,32 --duration 6s $EXTRA 2>/dev/null > /tmp/h4b/runs/last-$LABEL.json
L2=$(cut -d' ' -f1 /proc/loadavg)
node -e 'const j=require(process.argv[1]);for(const r of j.results){const v=r.samples_per_s/r.ratio_to_ed25519_verify;console.log([process.argv[2],process.argv[3],new Date().toISOString().slice(11,19),process.argv[4]+"-"+process.argv[5],r.samples_per_frame,r.service_cpu_us_per_sample.toFixed(1),r.cpu_us_per_sample.toFixed(1),Math.round(r.samples_per_s),r.ratio_to_ed25519_verify.toFixed(2),Math.round(v),r.backlog_at_end,r.rows_per_telemetry_insert.toFixed(0)].join("\t"))}' /tmp/h4b/runs/last-$LABEL.json $LABEL $ST $L1 $L2 | tee -a /tmp/h4b/runs/runs.tsv
