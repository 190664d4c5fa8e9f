#!/bin/bash
# usage: pair.sh <label> <newtree> <basetree> <order:new-first|base-first> <crypto...>
label=$1; new=$2; base=$3; order=$4; shift 4
run() { tree=$1; name=$2; crypto=$3
  l0=$(cut -d' ' -f1-2 /proc/loadavg)
  out=$(cd $tree && nice -n 10 node bin/sdc.js sim --scenario standard --agents 10000 --duration 3s --seed 1 --crypto $crypto --json 2>/dev/null)
  l1=$(cut -d' ' -f1-2 /proc/loadavg)
  echo "$out" | python3 -c "
import json,sys;d=json.load(sys.stdin);t=d['timing']
print('$label $name $crypto', round((t['setupCpuMs']+t['connectCpuMs'])/10000,3), 'setup',t['setupCpuMs'],'connect',t['connectCpuMs'],'hash',d['traceHash'][:16],'viol',len(d.get('violations',[])),'load $l0 -> $l1', '$(date -u +%H:%M)')"
}
for c in "$@"; do
  if [ $order = new-first ]; then run $new new $c; run $base base $c; else run $base base $c; run $new new $c; fi
done
