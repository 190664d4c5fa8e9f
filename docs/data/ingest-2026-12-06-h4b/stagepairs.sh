#!/bin/bash
# stagepairs.sh N: the control plane's side, base (one telemetry entry per frame) against after (telemetry_frames of 64), alternating
for i in $(seq 1 $1); do
  for t in $( (( i % 2 )) && echo "base after" || echo "after base"); do
    P=1; [ $t = after ] && P=64
    L=$(cut -d' ' -f1 /proc/loadavg)
    echo -e "$t\t$(date +%H:%M:%S)\t$L\t$(PACK=$P nice -n 10 node /tmp/h4b/after/cp-stage.mjs /tmp/h4b/$t 2 2>&1 | tail -1)" | tee -a /tmp/h4b/stage.tsv
  done
done
