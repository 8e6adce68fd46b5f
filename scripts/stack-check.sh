#!/usr/bin/env bash
# The docker-compose stack for real, end to end (issue 35; not part of CI: it
# builds images and takes tens of minutes on a small machine):
#   1. base images: debian:12 / debian:12-slim pulled, or bootstrapped with
#      debootstrap where no image registry can be reached;
#   2. builds the coordinator and CPU worker images (deploy/docker) and, for
#      what docker-compose.yml pulls from Docker Hub, the registry-free
#      stand-ins of deploy/offline (moto's S3 server for MinIO, Debian's
#      Prometheus) unless CALDERA_STACK_REGISTRY=1 says Docker Hub is reachable;
#   3. brings docker-compose.yml up (coordinator, two workers, S3, Prometheus);
#   4. installs the Python client (client/python) into a fresh venv, uploads the
#      bundled model to the bucket and submits a job through the client;
#   5. checks that Prometheus scrapes the coordinator and both workers;
#   6. kills worker-1's container while the job runs and checks that the job
#      still succeeds (its task is leased again after --lease-seconds) and that
#      the checkpoint is in the bucket;
#   7. tears everything down (also on failure).
# Needs root (rootful podman) on Debian 12; installs podman, runc, debootstrap
# and python3-venv with apt-get when missing. Prints one line per step; exit 0
# only when every check passed.
#   scripts/stack-check.sh            # WORK dir: $CALDERA_STACK_WORK or /var/tmp/caldera-stack
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
WORK=${CALDERA_STACK_WORK:-/var/tmp/caldera-stack}
PROJECT=calderastack
START=$SECONDS
mkdir -p "$WORK"

log() { printf '[stack-check +%4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() {
  log "FAILED: $*"
  exit 1
}

# --- 0. Tools -----------------------------------------------------------------
missing=()
for tool in podman:podman runc:runc debootstrap:debootstrap; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (apt-get)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Some sandboxes (a VM inside a VM) refuse the rlimits podman's default
# runtime sets and cgroups in hybrid mode: checked once the base image exists
# (below), with a fallback to runc and limits the host allows.
export CONTAINERS_CONF="$WORK/containers.conf"
: >"$CONTAINERS_CONF"

VENV=$WORK/venv
if [[ ! -x $VENV/bin/caldera-client ]]; then
  log "venv $VENV: podman-compose, boto3 and the Python client (pip install ./client/python)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "podman-compose==1.2.0" "boto3>=1.34" "$REPO/client/python"
fi
COMPOSE=("$VENV/bin/podman-compose" -p "$PROJECT" -f "$REPO/docker-compose.yml")

# The usage line above: CALDERA_STACK_REUSE_IMAGES=1 skips building an image
# that exists (for reruns after a change outside the images).

# --- 1. Base images -------------------------------------------------------------
if ! podman image exists docker.io/library/debian:12; then
  if timeout 60 podman pull -q docker.io/library/debian:12 >/dev/null 2>&1 &&
    timeout 60 podman pull -q docker.io/library/debian:12-slim >/dev/null 2>&1; then
    log "base images pulled from Docker Hub"
  else
    log "no image registry: bootstrapping debian:12 (bookworm, minbase) with debootstrap"
    root=$WORK/debian12-root
    rm -rf "$root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import -q - localhost/debian-bootstrap:12 >/dev/null
    podman tag localhost/debian-bootstrap:12 docker.io/library/debian:12
    podman tag localhost/debian-bootstrap:12 docker.io/library/debian:12-slim
    rm -rf "$root"
  fi
fi
if ! podman run --rm docker.io/library/debian:12 true >/dev/null 2>&1; then
  hard_nofile=$(ulimit -Hn)
  nofile=$((hard_nofile < 8192 ? hard_nofile : 8192))
  cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
  podman run --rm docker.io/library/debian:12 true ||
    fail "containers do not start here (podman run debian:12 true), even with runc and lower rlimits"
  log "containers start with runc and nofile=$nofile ($CONTAINERS_CONF)"
fi

# --- 2. Images --------------------------------------------------------------------
# A TLS-intercepting proxy's CA (what pip on this machine trusts) reaches the
# build step that downloads from PyPI (mounted beside the image's own bundle,
# which apt's ca-certificates rewrites).
build() { # tag dockerfile [extra podman build arguments]
  local tag=$1 file=$2 logfile="$WORK/build-${1//[\/:]/_}.log"
  shift 2
  if [[ ${CALDERA_STACK_REUSE_IMAGES:-0} == 1 ]] && podman image exists "$tag"; then
    log "reusing image $tag (CALDERA_STACK_REUSE_IMAGES=1)"
    return
  fi
  log "building $tag ($file)"
  podman build --format docker "$@" -f "$file" -t "$tag" "$REPO" >"$logfile" 2>&1 ||
    {
      tail -n 30 "$logfile"
      fail "podman build $tag (log: $logfile)"
    }
}
pip_ca=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
  pip_ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro
    --build-arg PIP_CERT=/etc/ssl/host-ca.crt)
build caldera/coordinator:dev deploy/docker/Dockerfile.coordinator
build caldera/worker-cpu:dev deploy/docker/Dockerfile.worker-cpu
if [[ ${CALDERA_STACK_REGISTRY:-0} != 1 ]]; then
  build caldera/s3-test:dev deploy/offline/Dockerfile.s3-test "${pip_ca[@]}"
  build caldera/prometheus-debian:dev deploy/offline/Dockerfile.prometheus
  COMPOSE+=(-f "$REPO/deploy/offline/compose.offline.yml")
fi

# --- 3. Up --------------------------------------------------------------------------
teardown() {
  if [[ ${CALDERA_STACK_KEEP:-0} == 1 ]]; then
    log "left running (CALDERA_STACK_KEEP=1): ${COMPOSE[*]} down -v"
    return
  fi
  log "tearing down"
  podman rm -f "${PROJECT}_prometheus_1" >/dev/null 2>&1 || true
  "${COMPOSE[@]}" down -v -t 5 >"$WORK/down.log" 2>&1 || true
}
trap teardown EXIT
"${COMPOSE[@]}" down -v -t 5 >/dev/null 2>&1 || true
# One service at a time, in dependency order, each without its dependencies:
# podman 4.3 refuses to start a container whose --requires graph spans
# containers created by an earlier podman-compose call.
for service in minio minio-init coordinator worker-1 worker-2; do
  log "compose up $service"
  "${COMPOSE[@]}" up -d --no-deps "$service" >>"$WORK/up.log" 2>&1 || {
    tail -n 30 "$WORK/up.log"
    fail "compose up $service"
  }
  [[ $service == minio ]] && sleep 3 # the bucket is created by minio-init, next
done
# Prometheus as docker-compose.yml defines it (config mount, port) but started
# by podman directly: its depends_on chain reaches the exited minio-init, which
# podman 4.3's dependency graph cannot start around.
prometheus_image=prom/prometheus:v2.54.1
[[ ${CALDERA_STACK_REGISTRY:-0} != 1 ]] && prometheus_image=caldera/prometheus-debian:dev
podman run -d --name "${PROJECT}_prometheus_1" --network "${PROJECT}_default" \
  --network-alias prometheus -p 127.0.0.1:9090:9090 \
  -v "$REPO/deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" \
  "$prometheus_image" >>"$WORK/up.log" 2>&1 || fail "podman run prometheus ($prometheus_image)"
log "compose up prometheus (podman run $prometheus_image)"
container() { podman ps -q --filter "label=com.docker.compose.project=$PROJECT" \
  --filter "label=com.docker.compose.service=$1"; }

export AWS_ACCESS_KEY_ID=caldera AWS_SECRET_ACCESS_KEY=caldera-secret AWS_REGION=us-east-1
PY=$VENV/bin/python
for _ in $(seq 60); do
  "$PY" - <<'EOF' >/dev/null 2>&1 && break
import boto3
boto3.client("s3", endpoint_url="http://127.0.0.1:9000").head_bucket(Bucket="caldera")
EOF
  sleep 2
done
"$PY" - <<'EOF' || fail "the bucket caldera never appeared at http://127.0.0.1:9000"
import boto3
boto3.client("s3", endpoint_url="http://127.0.0.1:9000").head_bucket(Bucket="caldera")
EOF
log "S3 up, bucket caldera created"

# --- 4. A job through the installed Python client -------------------------------
M=$REPO/models/stories260K
"$PY" - "$M" <<'EOF'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9000")
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    if os.path.isfile(path):
        s3.upload_file(path, "caldera", f"models/stories260K/{name}")
EOF
log "model uploaded to s3://caldera/models/stories260K"
CLIENT=("$VENV/bin/caldera-client")
for _ in $(seq 60); do
  "${CLIENT[@]}" list --server 127.0.0.1:50051 >/dev/null 2>&1 && break
  sleep 2
done
job=$("${CLIENT[@]}" submit --server 127.0.0.1:50051 --model s3://caldera/models/stories260K \
  --calibration s3://caldera/models/stories260K/calibration.safetensors \
  --out s3://caldera/out/stack-check --target-bits 3.5 --json |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["name"])') ||
  fail "submit through caldera-client"
log "submitted $job through caldera-client"

# --- 5. Prometheus scrapes the coordinator and both workers ----------------------
targets_up() {
  "$PY" - <<'EOF'
import json, urllib.request
t = json.load(urllib.request.urlopen("http://127.0.0.1:9090/api/v1/targets", timeout=5))
up = sorted(a["labels"]["instance"] for a in t["data"]["activeTargets"] if a["health"] == "up")
print(" ".join(up))
EOF
}
up=""
for _ in $(seq 40); do
  up=$(targets_up 2>/dev/null || true)
  [[ $up == *coordinator:9100* && $up == *worker-1:9101* && $up == *worker-2:9101* ]] && break
  sleep 3
done
[[ $up == *coordinator:9100* && $up == *worker-1:9101* && $up == *worker-2:9101* ]] ||
  fail "Prometheus targets up: '$up' (want coordinator:9100 worker-1:9101 worker-2:9101)"
log "Prometheus scrapes: $up"

# --- 6. Kill a worker mid-job; the job still finishes ------------------------------
done_tasks=0
for _ in $(seq 120); do
  line=$("${CLIENT[@]}" status --server 127.0.0.1:50051 "$job")
  [[ $line =~ tasks\ ([0-9]+)/([0-9]+) ]] && done_tasks=${BASH_REMATCH[1]}
  [[ $line == *RUNNING* && $done_tasks -ge 3 ]] && break
  [[ $line == *SUCCEEDED* || $line == *FAILED* ]] && fail "the job ended before a worker could be killed: $line"
  sleep 1
done
log "mid-job: $line"
podman kill "$(container worker-1)" >/dev/null || fail "podman kill worker-1"
log "killed worker-1's container"
"${CLIENT[@]}" wait --server 127.0.0.1:50051 --wait-timeout 900 "$job" >"$WORK/wait.log" 2>&1 || true
final=$("${CLIENT[@]}" status --server 127.0.0.1:50051 "$job")
log "final: $final"
[[ $final == *SUCCEEDED* ]] || fail "the job did not succeed after worker-1 was killed"
"$PY" - <<'EOF' || fail "no checkpoint in s3://caldera/out/stack-check"
import json, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9000")
report = json.loads(s3.get_object(Bucket="caldera", Key="out/stack-check/report.json")["Body"].read())
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="caldera", Prefix="out/stack-check/")["Contents"]]
bits = report["totals"].get("bits_per_param", report["totals"])
print(f"[stack-check] checkpoint: {len(keys)} objects, {len(report['matrices'])} matrices, totals {bits}")
EOF
worker2=$("$PY" - <<'EOF'
import json, urllib.request
q = "http://127.0.0.1:9090/api/v1/query?query=caldera_worker_busy_seconds_total"
r = json.load(urllib.request.urlopen(q, timeout=5))["data"]["result"]
print(" ".join(f'{x["metric"]["instance"]}={float(x["value"][1]):.1f}s' for x in r))
EOF
)
log "Prometheus caldera_worker_busy_seconds_total: $worker2"
log "PASSED in $((SECONDS - START)) s"
