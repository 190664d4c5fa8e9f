#!/bin/bash
# pairs.sh N LABELA TREEA LABELB TREEB: alternating runs, first tree swapped each pair
N=$1
for i in $(seq 1 $N); do
  if (( i % 2 )); then /tmp/h4/run.sh $3 $2; /tmp/h4/run.sh $5 $4; else /tmp/h4/run.sh $5 $4; /tmp/h4/run.sh $3 $2; fi
done
