#!/bin/bash
# Warm write bench (write-bench.mjs) in alternating processes of the base and after trees.
for i in 1 2 3 4; do
  for t in base after; do [ $((i % 2)) -eq 0 ] && t=$([ $t = base ] && echo after || echo base); echo "$t $(ROOT=/tmp/h3/$t ONLY=presence,compliance,report,emptyTx node /tmp/h3/write-bench.mjs | awk '{printf "%s=%s ", $1, $3}')"; done
done
