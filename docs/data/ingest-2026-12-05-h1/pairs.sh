#!/bin/bash
# usage: pairs.sh N label [extra args...]; alternates before/after, first tree swapped pair by pair
N=$1; shift; LABEL=$1; shift
OUT=/tmp/h1/pairs-$LABEL.tsv
for i in $(seq 1 $N); do
  if [ $((i % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for t in $order; do
    L=$(cut -d' ' -f1 /proc/loadavg)
    J=$(cd /tmp/h1-$t && nice -n 10 node bin/sdc.js bench ingest --json --modes session-mac --duration 8s "$@" 2>/dev/null)
    echo "$J" | python3 -c "
import json,sys
d=json.load(sys.stdin); r=d['results'][0]; e=d['environment']
print('\t'.join(str(x) for x in ['$i','$t',round(r['service_cpu_us_per_sample'],1),round(r['cpu_us_per_sample'],1),round(r['samples_per_s']),round(r['ratio_to_ed25519_verify'],3),d['details']['ed25519_verify_per_s'],r['backlog_at_start'],r['backlog_at_end'],round(r['rows_per_telemetry_insert'],1),round(r['sql_statements_per_sample'],3),e['load_average_before'][0],e['load_average_after'][0]]))" >> $OUT
  done
done
