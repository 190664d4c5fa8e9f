#!/bin/bash
# usage: run.sh TREE K OUT [mysql]   -> runs bench, samples main-thread schedstat + mariadbd ticks each second
TREE=$1; K=$2; OUT=$3; MODE=$4
cd $TREE
EXTRA=""
if [ "$MODE" = mysql ]; then
  mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS h6_ingest; CREATE DATABASE h6_ingest;"
  redis-cli -n 4 flushdb >/dev/null
  EXTRA="--redis redis://127.0.0.1:6379/4 --mysql mysql://root@127.0.0.1:3306/h6_ingest"
fi
L0=$(cut -d' ' -f1-3 /proc/loadavg)
nice -n 10 node bin/sdc.js bench ingest --json --modes session-mac --samples-per-frame $K --duration 8s $EXTRA > $OUT.json 2>$OUT.err &
PID=$!
MDP=$(pgrep -x mariadbd)
: > $OUT.sched
while kill -0 $PID 2>/dev/null; do
  echo "$(date +%s.%N) $(cat /proc/$PID/schedstat 2>/dev/null) $(awk '{print $14+$15}' /proc/$MDP/stat)" >> $OUT.sched
  sleep 0.5
done
wait $PID
L1=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$OUT" "$L0" "$L1" <<'PY'
import json,sys
out,l0,l1=sys.argv[1:4]
d=json.load(open(out+'.json'))
for r in d['results']:
  print(f"{out} K={r['samples_per_frame']} {r['stores']} sps={r['samples_per_s']:.0f} ratio={r['ratio_to_ed25519_verify']:.2f} cpu={r['cpu_us_per_sample']:.1f} svc={r['service_cpu_us_per_sample']:.1f} rows/ins={r['rows_per_telemetry_insert']:.0f} backlog={r['backlog_at_end']} verify={d['details']['ed25519_verify_per_s']} load={l0}->{l1}")
PY
