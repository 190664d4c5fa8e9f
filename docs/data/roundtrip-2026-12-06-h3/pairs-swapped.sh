#!/bin/bash
# usage: pairs.sh N CMDS PAIRS TAG
N=$1; C=$2; P=$3; T=$4
for i in $(seq 1 $P); do
  if [ $((i % 2)) -eq 0 ]; then order="base head"; else order="head base"; fi
  for w in $order; do
    redis-cli -n 11 flushdb >/dev/null; mysql -uroot -e "drop database if exists h3_rt_a; create database h3_rt_a"
    l0=$(cut -d' ' -f1 /proc/loadavg); s=$(date -u +%H:%M:%S)
    (cd /tmp/h3/$w && nice -n 5 node bin/sdc.js bench roundtrip --agents $N --commands $C --redis redis://127.0.0.1:6379/11 --mysql mysql://root@127.0.0.1:3306/h3_rt_a --timeout 20m --json > /tmp/h3/data/$T-$i-$w.json 2>/tmp/h3/data/$T-$i-$w.err)
    l1=$(cut -d' ' -f1 /proc/loadavg)
    python3 - "$T-$i-$w" "$s" "$l0" "$l1" <<'PY' >> /tmp/h3/data/summary-$T.log
import json,sys
n,s,l0,l1=sys.argv[1:]
d=json.load(open(f'/tmp/h3/data/{n}.json')); x=d.get('details',d)
r=x['ratios'] if 'ratios' in x else {}
print(n, s, f'load {l0}->{l1}', 'cpu/cmd', x['cpu_ms_per_command'], 'sql/cmd', x['sql_round_trips_per_command'], 'elu', x['commands_phase_load']['event_loop_utilization'], 'cpu/wall', x['commands_phase_load']['cpu_per_wall'])
PY
  done
done
redis-cli -n 11 flushdb >/dev/null; mysql -uroot -e "drop database if exists h3_rt_a"
