#!/bin/bash
for i in 1 2 3 4 5 6; do
  for t in $( (( i % 2 )) && echo "base after" || echo "after base"); do
    d=/tmp/h4-$t; L=$(cut -d' ' -f1 /proc/loadavg)
    echo -e "$t\t$(date +%H:%M:%S)\t$L\t$(nice -n 10 node /tmp/h4/cp-stage.mjs $d 3 2>&1 | tail -1)" | tee -a /tmp/h4/stage.tsv
  done
done
