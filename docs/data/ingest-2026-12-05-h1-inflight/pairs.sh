#!/bin/sh
# Alternating pairs: the tree before (0710c5e, one telemetry INSERT in flight) and after (several, TelemetryRowWriter
# insertsInFlightMax), sdc bench ingest at K = 1 and 32 samples per frame in one run each, embedded stores and
# Redis + MariaDB (database h1_ingest); one TSV line per row. BEFORE is a built export of 0710c5e.
# Run from the repository root after `node scripts/build.mjs`. ROUNDS, STORES (redis embedded) and KS narrow a run.
set -e
out=docs/data/ingest-2026-12-05-h1-inflight
tsv=$out/pairs.tsv
before=${BEFORE:-/tmp/h1-before}
after=${AFTER:-$(pwd)}
[ -f "$tsv" ] || printf 'run\ttree\tstores\tload1\tverify_per_s\tK\tsamples_per_s\tframes_per_s\tratio\tcpu_us\tservice_cpu_us\tbacklog_start\tbacklog_end\trows_per_insert\tsql_per_sample\n' > "$tsv"
run() { # name, tree dir, tree label, K list, extra args
  load=$(cut -d' ' -f1 /proc/loadavg)
  (cd "$2" && nice -n 10 node bin/sdc.js bench ingest --json --modes session-mac --samples-per-frame "$4" --duration 8s $5) > "$out/$1.json"
  python3 - "$out/$1.json" "$1" "$3" "$load" >> "$tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d['details']['ed25519_verify_per_s']
for r in d['results']:
    print('\t'.join(str(x) for x in [sys.argv[2], sys.argv[3], r['stores'], sys.argv[4], v, r['samples_per_frame'], round(r['samples_per_s']), round(r['frames_per_s']),
        round(r['ratio_to_ed25519_verify'], 2), round(r['cpu_us_per_sample'], 1), round(r['service_cpu_us_per_sample'], 1), r['backlog_at_start'], r['backlog_at_end'],
        round(r['rows_per_telemetry_insert'], 1), round(r['sql_statements_per_sample'], 4)]))
PY
}
db="--redis redis://127.0.0.1:6379 --mysql mysql://root@127.0.0.1:3306/h1_ingest"
for round in ${ROUNDS:-1 2 3 4}; do
  if [ $((round % 2)) = 1 ]; then first=before; second=after; ks=${KS:-1,32}; else first=after; second=before; ks=${KS:-32,1}; fi
  for pair in ${STORES:-redis embedded}; do
    extra=""; [ "$pair" = redis ] && extra="$db"
    for t in $first $second; do
      dir=$before; [ "$t" = after ] && dir=$after
      run "$pair-$round-$t" "$dir" "$t" "$ks" "$extra"
    done
  done
done
