#!/bin/bash
# pairs.sh N STORES: alternating base/after runs, first tree swapped each pair
for i in $(seq 1 $1); do
  if (( i % 2 )); then /tmp/h4b/run.sh /tmp/h4b/base base $2; /tmp/h4b/run.sh /tmp/h4b/after after $2; else /tmp/h4b/run.sh /tmp/h4b/after after $2; /tmp/h4b/run.sh /tmp/h4b/base base $2; fi
done
