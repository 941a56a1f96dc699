#!/bin/bash
# measure-contributions.sh MODE [SECONDS]: durable contributions/s through
# the gateway, and the CPU per contribution summed over the platform's
# processes (utime + stime from /proc; the load tool not counted), as in
# docs/performance.md, "The JetStream journal in atomic batches".
#
# MODE: dev | cluster (NATS, the custodian, 3 nodes and a gateway, as
# README's cluster section) | cluster1 (the same, --journal-batch-max 1).
# Needs: MT (default: mastertrust on PATH; go build ./cmd/mastertrust),
# vegeta (go install github.com/tsenart/vegeta/v12@latest), curl, python3.
# Everything runs on loopback under /tmp/mtm-MODE.
set -u
MODE=$1; SECS=${2:-20}; MT=${MT:-mastertrust}; VEG=${VEGETA:-vegeta}
D=/tmp/mtm-$MODE; rm -rf $D; mkdir -p $D; cd $D
PIDS=()
# Stopped with SIGTERM, and given 15 s, so that each writes its CPU profile
# (MASTERTRUST_CPU_PROFILE=/dir/prefix, if set) before any kill -9.
cleanup() {
  for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done
  for i in $(seq 1 75); do alive=0; for p in "${PIDS[@]}"; do kill -0 $p 2>/dev/null && alive=1; done; [ $alive = 0 ] && break; sleep 0.2; done
  for p in "${PIDS[@]}"; do kill -9 $p 2>/dev/null; done
}
trap cleanup EXIT
wait_for() { for i in $(seq 1 300); do grep -q "$2" $1 2>/dev/null && return 0; sleep 0.2; done; echo "timeout waiting for $2 in $1"; tail -5 $1; exit 1; }
if [ $MODE = dev ]; then
  $MT dev --data-dir $D/data --http 127.0.0.1:18080 > dev.log 2>&1 & PIDS+=($!)
  wait_for dev.log "http://"
  URL=http://127.0.0.1:18080
  TOK="$MT token --data-dir $D/data"
else
  mkdir -p data && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > data/cluster-token-secret
  export MASTERTRUST_TOKEN_SECRET=$(cat data/cluster-token-secret)
  export MASTERTRUST_NATS_SECRETS=$D/data/secrets/nats
  $MT cert --dir data/secrets/cluster --name local --hosts 127.0.0.1 >/dev/null 2>&1
  export MASTERTRUST_CLUSTER_CA=data/secrets/cluster/ca.crt MASTERTRUST_CLUSTER_CERT=data/secrets/cluster/local.crt MASTERTRUST_CLUSTER_KEY=data/secrets/cluster/local.key
  $MT secrets init >/dev/null 2>&1
  $MT nats --data-dir data/nats --nats-port 14222 > nats.log 2>&1 & PIDS+=($!)
  sleep 2
  export MASTERTRUST_NATS_URL=nats://127.0.0.1:14222
  $MT custodian --data-dir data/custodian > custodian.log 2>&1 & PIDS+=($!)
  EXTRA=""; [ $MODE = cluster1 ] && EXTRA="--journal-batch-max 1"
  for n in 1 2 3; do
    $MT node --data-dir data/n$n --http 127.0.0.1:1700$n $EXTRA > n$n.log 2>&1 & PIDS+=($!)
  done
  for n in 1 2 3; do wait_for n$n.log "node started"; done
  $MT gateway --http 127.0.0.1:18080 > gw.log 2>&1 & PIDS+=($!)
  wait_for gw.log "gateway"
  URL=http://127.0.0.1:18080
  TOK="$MT token"
  until $MT cluster status --url $URL >/dev/null 2>&1; do sleep 0.5; done
fi
for i in $(seq 1 50); do curl -sf $URL/readyz >/dev/null && break; sleep 0.2; done
# 256 members, their tokens, their pots.
> tokens
for m in $(seq -f "M%06g" 1 1024); do echo "$m $($TOK --member $m | tail -1)" >> tokens; done
python3 - $URL <<'PY'
import json,base64,sys
url=sys.argv[1]
toks=[l.split() for l in open('tokens')]
with open('open.targets','w') as f:
  for m,t in toks:
    f.write(json.dumps({"method":"POST","url":url+"/v1/pots","header":{"Authorization":["Bearer "+t],"Content-Type":["application/json"],"Idempotency-Key":["open-"+m]},"body":base64.b64encode(json.dumps({"memberId":m,"riskProfile":"balanced"}).encode()).decode()})+"\n")
with open('pay.targets','w') as f:
  for i in range(400000):
    m,t=toks[i%len(toks)]
    f.write(json.dumps({"method":"POST","url":url+"/v1/pots/"+m+"/contributions","header":{"Authorization":["Bearer "+t],"Content-Type":["application/json"],"Idempotency-Key":["pay-%d"%i]},"body":base64.b64encode(b'{"amount":"10.00"}').decode()})+"\n")
PY
$VEG attack -format=json -targets=open.targets -rate=0 -max-workers=16 -duration=4s | $VEG report -type=text | grep -E "Status|Success"
ALL="${PIDS[*]}"
cpu() { local s=0; for p in $ALL; do set -- $(cut -d' ' -f14,15 /proc/$p/stat 2>/dev/null); s=$((s+${1:-0}+${2:-0})); done; echo $s; }
# warm-up 5 s, then measured
$VEG attack -format=json -targets=pay.targets -rate=0 -max-workers=64 -duration=5s > warm.bin
percpu() { for p in $ALL; do echo "$(tr '\0' ' ' < /proc/$p/cmdline | awk '{print $2"-"$4}') $(cut -d' ' -f14,15 /proc/$p/stat)"; done; }
percpu > cpu0.txt
C0=$(cpu); T0=$(date +%s.%N)
$VEG attack -format=json -targets=pay.targets -rate=0 -max-workers=64 -duration=${SECS}s > run.bin
C1=$(cpu); T1=$(date +%s.%N)
percpu > cpu1.txt
paste cpu0.txt cpu1.txt | awk '{printf "%s %.1fs\n", $1, ($5+$6-$2-$3)/100}' 
$VEG report -type=text run.bin | tee report.txt | grep -E "Requests|Latencies|Success|Status"
python3 - $C0 $C1 $T0 $T1 <<'PY'
import sys,re
c0,c1,t0,t1=map(float,sys.argv[1:])
txt=open('report.txt').read()
ok=int(re.search(r'Status Codes\s+\[code:count\]\s+(.*)',txt).group(1).split('202:')[1].split()[0]) if '202:' in txt else 0
wall=t1-t0; cpu=(c1-c0)/100
print(f"durable contributions: {ok} in {wall:.1f}s = {ok/wall:.0f}/s; platform CPU {cpu:.1f}s = {cpu/wall:.2f} cores; {1e6*cpu/max(ok,1):.0f} us CPU per contribution")
PY
