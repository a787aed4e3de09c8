#!/usr/bin/env bash
# live-cluster.sh -- a real Kubernetes control plane on loopback, with simulated
# nodes and pods, for meshdoctor's live tests:
#   etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok.
#
# Everything is built from Go modules (no prebuilt binary is downloaded):
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                   k8s.io/kubernetes          v1.34.4
#   etcd            go.etcd.io/etcd/server/v3  v3.6.4
#   kwok            sigs.k8s.io/kwok           v0.8.0   (cmd/kwok)
#
# Why these versions:
#   * Kubernetes 1.34 is a current, widely deployed minor; v1.34.4 was its
#     newest patch on the Go module proxy when this was written.
#   * etcd: Debian's etcd-server is 3.4.23, which Kubernetes >= 1.31 no longer
#     supports.  Rather than pinning an old Kubernetes we build etcd from its Go
#     module, at v3.6.4: exactly the etcd that k8s.io/kubernetes v1.34.4 itself
#     depends on (go.etcd.io/etcd/server/v3 v3.6.4 is in its go.mod), i.e. the
#     etcd it is released and tested with.  It is built inside the same wrapper
#     module as the Kubernetes binaries, so it shares their compiled dependency
#     graph (faster, and no version skew).
#   * kwok v0.8.0 is the newest kwok release; it has no replace directives, so
#     it is built with plain `go install sigs.k8s.io/kwok/cmd/kwok@v0.8.0`.
#   * kube-controller-manager and kube-scheduler are not strictly needed for a
#     bare API server, but without them there is no `default` ServiceAccount
#     in new namespaces (pod creation fails in the ServiceAccount admission
#     plugin), DaemonSets/Deployments never get pods, and namespace deletion
#     never finishes.  They cost a few more minutes of (one-time) build.
#   * kubectl (k8s.io/kubernetes/cmd/kubectl, same wrapper module and version)
#     lets the live tests write real `kubectl cluster-info dump` directories and
#     `kubectl get -o yaml` exports (tests/live/test_live_dump.py).
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging
# modules k8s.io/<name> with ./staging/src/k8s.io/<name>.  `build` therefore
# generates a wrapper module (in a temp dir) that requires k8s.io/kubernetes
# and replaces every staging module (read from the downloaded kubernetes
# go.mod) with its published k8s.io/<name> v0.34.4.
#
# Subcommands:
#   build        build the binaries into $MESHDOCTOR_LIVE_CACHE/bin (idempotent)
#   start DIR    start the control plane; state, logs and kubeconfigs in DIR
#   stop DIR     stop what `start DIR` started
#   status DIR   print which of the started processes are alive
#
# Environment:
#   MESHDOCTOR_LIVE_CACHE   cache root (default $HOME/.cache/meshdoctor-live):
#                           bin/, share/, Go module cache gomod/, Go build
#                           cache gocache/
#   LIVE_ETCD_PORT, LIVE_ETCD_PEER_PORT, LIVE_APISERVER_PORT, LIVE_KWOK_PORT
#                           fixed ports (default: random free loopback ports)
#   LIVE_KWOK_NODES         number of simulated nodes (default 1): kwok-node-0..
#   LIVE_CONTROLLERS        1 (default) to run kube-controller-manager and
#                           kube-scheduler, 0 for a bare API server + kwok
#   LIVE_KCM_CONTROLLERS    kube-controller-manager --controllers (default: housekeeping
#                           only, see DEFAULT_KCM_CONTROLLERS; '*' for all, incl. workloads)
#   LIVE_START_TIMEOUT      seconds to wait for each component (default 120)
#   LIVE_WATCH_PID          if set, a watchdog stops the cluster once that process exits
#
# `start DIR` writes:
#   DIR/admin.kubeconfig       user meshdoctor-admin (group system:masters)
#   DIR/restricted.kubeconfig  user meshdoctor-restricted (no extra groups)
#   DIR/env                    shell-sourceable: ports, pids, URLs, tokens, paths
#   DIR/audit.log              audit log, every request at Metadata level
#   DIR/logs/*.log             component logs
#   DIR/pod-logs/              where container log files for kwok live
#
# Pod logs: kwok serves `GET /api/v1/namespaces/NS/pods/P/log` from files in
# CRI log format.  A namespaced kwok `Logs` object (kwok.x-k8s.io/v1alpha1,
# named like the pod) maps containers to files (logsFile/previousLogsFile);
# pods without one get an empty log (cluster-wide default ClusterLogs).
# tests/live/conftest.py has a helper (set_pod_log) that writes both.
#
# Everything listens on 127.0.0.1 only.
set -euo pipefail

K8S_VERSION=v1.34.4
STAGING_VERSION=v0.34.4
ETCD_VERSION=v3.6.4
KWOK_VERSION=v0.8.0

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
CACHE="${MESHDOCTOR_LIVE_CACHE:-$HOME/.cache/meshdoctor-live}"
BIN="$CACHE/bin"
SHARE="$CACHE/share/kwok-$KWOK_VERSION"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# Housekeeping controllers only: they give each namespace its default ServiceAccount and
# kube-root-ca.crt, delete namespaces and dependents properly, fill the aggregated
# ClusterRoles (admin/edit/view), and remove the node.kubernetes.io/not-ready taint that every
# new Node gets, once kwok has made it Ready (else the scheduler places no pod).  Workload controllers (daemonset, replicaset, deployment,
# statefulset, job, endpointslice...) are off by default because they would fight tests that
# replay recorded objects (deleting "excess" pods, rewriting EndpointSlices); enable them with
# LIVE_KCM_CONTROLLERS='*' (or a list).
DEFAULT_KCM_CONTROLLERS=node-lifecycle-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,garbage-collector-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller

log() { echo "live-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- build ----

go_env() {
    export GOMODCACHE="$CACHE/gomod"
    export GOCACHE="$CACHE/gocache"
    export GOFLAGS="-trimpath -modcacherw"
    export CGO_ENABLED=0
    export GOTOOLCHAIN=local
    export GOWORK=off
    export GO111MODULE=on
}

stamp_ok() { # name version
    [[ -x "$BIN/$1" && -f "$BIN/.$1.stamp" && "$(cat "$BIN/.$1.stamp")" == "$2" ]]
}

k8s_stamp() { echo "k8s.io/kubernetes@$K8S_VERSION etcd@$ETCD_VERSION"; }
kwok_stamp() { echo "sigs.k8s.io/kwok@$KWOK_VERSION"; }

k8s_built() {
    local b want
    want="$(k8s_stamp)"
    for b in "${K8S_BINARIES[@]}" etcd; do
        stamp_ok "$b" "$want" || return 1
    done
}

kwok_built() {
    stamp_ok kwok "$(kwok_stamp)" && [[ -f "$SHARE/crd-logs.yaml" ]]
}

build_k8s() {
    local want
    want="$(k8s_stamp)"
    if k8s_built; then
        log "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd already built ($want)"
        return
    fi
    local work modfile
    work="$(mktemp -d "${TMPDIR:-/tmp}/meshdoctor-live-build.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    log "downloading k8s.io/kubernetes@$K8S_VERSION go.mod"
    modfile="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -f "$modfile" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
    local staging
    staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$modfile")"
    [[ -n "$staging" ]] || die "no staging modules found in $modfile"
    {
        echo "module meshdoctor.invalid/livebuild"
        echo
        echo "go 1.24.0"
        echo
        echo "require ("
        echo "	k8s.io/kubernetes $K8S_VERSION"
        echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
        echo ")"
        echo
        echo "replace ("
        local m
        for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
        echo ")"
    } > "$work/go.mod"
    cat > "$work/tools.go" <<'GO'
//go:build tools

// Package tools only pins the main packages built by live-cluster.sh.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    log "resolving the module graph (go mod tidy)"
    (cd "$work" && go mod tidy)
    # go mod tidy must not have moved etcd away from the pinned version
    grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$work/go.mod" ||
        die "etcd server version drifted: $(grep etcd/server "$work/go.mod")"
    mkdir -p "$work/out" "$BIN"
    local minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    local ldflags="-s -w \
        -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
        -X k8s.io/component-base/version.gitMajor=1 \
        -X k8s.io/component-base/version.gitMinor=$minor \
        -X k8s.io/component-base/version.gitTreeState=clean \
        -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
        -X k8s.io/client-go/pkg/version.gitMajor=1 \
        -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    local b
    for b in "${K8S_BINARIES[@]}"; do
        stamp_ok "$b" "$want" && continue
        log "building $b (slow the first time)"
        (cd "$work" && nice go build -ldflags "$ldflags" -o "$work/out/$b" "k8s.io/kubernetes/cmd/$b")
        mv -f "$work/out/$b" "$BIN/$b"
        echo "$want" > "$BIN/.$b.stamp"
    done
    if ! stamp_ok etcd "$want"; then
        log "building etcd $ETCD_VERSION"
        (cd "$work" && nice go build -ldflags "-s -w" -o "$work/out/etcd" go.etcd.io/etcd/server/v3)
        mv -f "$work/out/etcd" "$BIN/etcd"
        echo "$want" > "$BIN/.etcd.stamp"
    fi
}

build_kwok() {
    local want
    want="$(kwok_stamp)"
    if kwok_built; then
        log "kwok already built ($want)"
        return
    fi
    mkdir -p "$BIN"
    if ! stamp_ok kwok "$want"; then
        log "building kwok $KWOK_VERSION"
        GOBIN="$BIN" nice go install -ldflags "-s -w \
            -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
            "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    fi
    # kwok's default stages and its Logs CRD ship in the module as YAML; keep
    # copies next to the binary (they are read by `start`).
    local src="$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION"
    [[ -d "$src" ]] || (cd "${TMPDIR:-/tmp}" && go mod download "sigs.k8s.io/kwok@$KWOK_VERSION")
    mkdir -p "$SHARE"
    cp "$src/kustomize/stage/node/fast/node-initialize.yaml" \
        "$src/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
        "$src/kustomize/stage/pod/fast/pod-ready.yaml" \
        "$src/kustomize/stage/pod/fast/pod-complete.yaml" \
        "$src/kustomize/stage/pod/fast/pod-delete.yaml" "$SHARE/"
    grep -v '^---$' "$src/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml" > "$SHARE/crd-logs.yaml"
    chmod -R u+w "$SHARE"
    echo "$want" > "$BIN/.kwok.stamp"
}

cmd_build() {
    if k8s_built && kwok_built; then
        log "all binaries already built in $BIN"
        return
    fi
    command -v go >/dev/null || die "go toolchain not found in PATH"
    go_env
    local gov
    gov="$(go env GOVERSION)" # e.g. go1.26.8
    gov="${gov#go}"
    local major="${gov%%.*}" minor="${gov#*.}"
    minor="${minor%%[!0-9]*}"
    if ((major < 1 || (major == 1 && minor < 26))); then
        die "Go >= 1.26 is needed (kwok $KWOK_VERSION and etcd $ETCD_VERSION require it); found go$gov"
    fi
    # one build at a time per cache (parallel pytest sessions, CI + developer...)
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.build.lock"
    if ! flock -n 9; then
        log "another build holds $CACHE/.build.lock; waiting"
        flock 9
    fi
    if k8s_built && kwok_built; then
        log "all binaries were built meanwhile in $BIN"
        return
    fi
    local t0=$SECONDS
    build_k8s
    build_kwok
    log "build done in $((SECONDS - t0))s; binaries in $BIN"
}

# ---------------------------------------------------------------- start ----

free_ports() { # count -> prints that many distinct free loopback ports
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

gen_pki() { # dir
    local pki="$1/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
            -subj "/CN=meshdoctor-live-ca" >/dev/null 2>&1
        issue() { # name subject sans extendedKeyUsage
            openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" >/dev/null 2>&1
            {
                echo "basicConstraints=CA:FALSE"
                echo "keyUsage=critical,digitalSignature,keyEncipherment"
                echo "extendedKeyUsage=$4"
                [[ -n "$3" ]] && echo "subjectAltName=$3"
            } > "$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile "$1.ext" -out "$1.crt" >/dev/null 2>&1
            rm -f "$1.csr" "$1.ext"
        }
        issue apiserver "/CN=kube-apiserver" \
            "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
            serverAuth
        issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "" clientAuth
        issue kwok "/CN=kwok-kubelet" "IP:127.0.0.1,DNS:localhost" serverAuth
        openssl genrsa -out sa.key 2048 >/dev/null 2>&1
        openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
        chmod 600 ./*.key
    )
}

write_kubeconfig() { # file server token user
    local ca_data
    ca_data="$(base64 -w0 < "$DIR/pki/ca.crt")"
    cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: meshdoctor-live
  cluster:
    server: $2
    certificate-authority-data: $ca_data
users:
- name: $4
  user:
    token: $3
contexts:
- name: $4@meshdoctor-live
  context:
    cluster: meshdoctor-live
    user: $4
    namespace: default
current-context: $4@meshdoctor-live
EOF
    chmod 600 "$1"
}

api() { # curl args... (admin)
    curl -sS --max-time 30 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$@"
}

# start a process in its own session, output to DIR/logs/NAME.log, record pid
spawn() { # name cmd...
    local name="$1"
    shift
    setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" > "$DIR/pids/$name"
    log "started $name (pid $pid)"
}

alive() { # name
    local pid
    pid="$(cat "$DIR/pids/$1" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null
}

wait_for() { # name description command...
    local name="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + ${LIVE_START_TIMEOUT:-120}))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$name"; then
            log "$name exited while waiting for $what; last log lines:"
            tail -n 40 "$DIR/logs/$name.log" >&2 || true
            cmd_stop "$DIR" || true
            die "$name failed"
        fi
        if ((SECONDS > deadline)); then
            log "timed out waiting for $what; last $name log lines:"
            tail -n 40 "$DIR/logs/$name.log" >&2 || true
            cmd_stop "$DIR" || true
            die "timeout waiting for $what"
        fi
        sleep 0.3
    done
}

http_ok() { # url-path -> 0 if 2xx
    [[ "$(api -o /dev/null -w '%{http_code}' "$APISERVER_URL$1")" == 2* ]]
}

readyz_ok() { [[ "$(api "$APISERVER_URL/readyz")" == ok ]]; }

etcd_ok() { curl -sS --max-time 5 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

crd_established() {
    api "$APISERVER_URL/apis/apiextensions.k8s.io/v1/customresourcedefinitions/logs.kwok.x-k8s.io" |
        tr -d ' \n' | grep -q '"type":"Established","status":"True"'
}

all_nodes_ready() {
    local i
    for ((i = 0; i < KWOK_NODES; i++)); do
        api "$APISERVER_URL/api/v1/nodes/kwok-node-$i" |
            tr -d ' \n' | grep -q '"type":"Ready","status":"True"' || return 1
    done
}

nodes_untainted() {
    local i
    for ((i = 0; i < KWOK_NODES; i++)); do
        api "$APISERVER_URL/api/v1/nodes/kwok-node-$i" | grep -q 'node.kubernetes.io/not-ready' && return 1
    done
    return 0
}

default_sa_exists() { http_ok /api/v1/namespaces/default/serviceaccounts/default; }

post() { # path content-type body
    local code
    code="$(api -o "$DIR/logs/last-post.json" -w '%{http_code}' -X POST \
        -H "Content-Type: $2" --data-binary "$3" "$APISERVER_URL$1")"
    [[ "$code" == 2* || "$code" == 409 ]] || {
        cat "$DIR/logs/last-post.json" >&2
        die "POST $1 failed with HTTP $code"
    }
}

cmd_start() {
    [[ $# -eq 1 ]] || die "usage: $0 start DIR"
    if ! { k8s_built && kwok_built; }; then
        die "binaries missing in $BIN: run '$0 build' first"
    fi
    mkdir -p "$1"
    DIR="$(cd "$1" && pwd)"
    if [[ -f "$DIR/env" ]] && grep -q '^APISERVER_PID=' "$DIR/env"; then
        die "$DIR/env exists: stop the running cluster first ('$0 stop $DIR')"
    fi
    local t0=$SECONDS
    mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/pod-logs" "$DIR/kwok-home"
    KWOK_NODES="${LIVE_KWOK_NODES:-1}"
    local controllers="${LIVE_CONTROLLERS:-1}"
    local kcm_controllers="${LIVE_KCM_CONTROLLERS:-$DEFAULT_KCM_CONTROLLERS}"

    read -r p1 p2 p3 p4 <<<"$(free_ports 4)"
    ETCD_PORT="${LIVE_ETCD_PORT:-$p1}"
    local etcd_peer_port="${LIVE_ETCD_PEER_PORT:-$p2}"
    local apiserver_port="${LIVE_APISERVER_PORT:-$p3}"
    local kwok_port="${LIVE_KWOK_PORT:-$p4}"
    APISERVER_URL="https://127.0.0.1:$apiserver_port"

    gen_pki "$DIR"
    ADMIN_TOKEN="$(openssl rand -hex 24)"
    local restricted_token kwok_token kcm_token sched_token
    restricted_token="$(openssl rand -hex 24)"
    kwok_token="$(openssl rand -hex 24)"
    kcm_token="$(openssl rand -hex 24)"
    sched_token="$(openssl rand -hex 24)"
    cat > "$DIR/pki/tokens.csv" <<EOF
$ADMIN_TOKEN,meshdoctor-admin,meshdoctor-admin,"system:masters"
$restricted_token,meshdoctor-restricted,meshdoctor-restricted
$kwok_token,kwok-controller,kwok-controller,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager,"system:masters"
$sched_token,system:kube-scheduler,system:kube-scheduler,"system:masters"
EOF
    chmod 600 "$DIR/pki/tokens.csv"

    cat > "$DIR/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
# one event per request (at ResponseComplete, or Panic); nothing is dropped
omitStages: ["RequestReceived"]
rules:
- level: Metadata
EOF

    write_kubeconfig "$DIR/admin.kubeconfig" "$APISERVER_URL" "$ADMIN_TOKEN" meshdoctor-admin
    write_kubeconfig "$DIR/restricted.kubeconfig" "$APISERVER_URL" "$restricted_token" meshdoctor-restricted
    write_kubeconfig "$DIR/kwok.kubeconfig" "$APISERVER_URL" "$kwok_token" kwok-controller
    write_kubeconfig "$DIR/controller-manager.kubeconfig" "$APISERVER_URL" "$kcm_token" system:kube-controller-manager
    write_kubeconfig "$DIR/scheduler.kubeconfig" "$APISERVER_URL" "$sched_token" system:kube-scheduler

    cat > "$DIR/env" <<EOF
LIVE_DIR=$DIR
APISERVER_URL=$APISERVER_URL
APISERVER_PORT=$apiserver_port
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$etcd_peer_port
KWOK_PORT=$kwok_port
KWOK_NODES=$KWOK_NODES
CONTROLLERS=$controllers
KCM_CONTROLLERS=$kcm_controllers
CA_FILE=$DIR/pki/ca.crt
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
RESTRICTED_KUBECONFIG=$DIR/restricted.kubeconfig
ADMIN_TOKEN=$ADMIN_TOKEN
RESTRICTED_TOKEN=$restricted_token
AUDIT_LOG=$DIR/audit.log
POD_LOG_DIR=$DIR/pod-logs
K8S_VERSION=$K8S_VERSION
ETCD_VERSION=$ETCD_VERSION
KWOK_VERSION=$KWOK_VERSION
EOF

    # ---- etcd
    spawn etcd "$BIN/etcd" \
        --name=default \
        --data-dir="$DIR/etcd" \
        --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster="default=http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster-state=new \
        --unsafe-no-fsync=true \
        --quota-backend-bytes=2147483648 \
        --log-level=warn
    echo "ETCD_PID=$(cat "$DIR/pids/etcd")" >> "$DIR/env"
    wait_for etcd "etcd health" etcd_ok

    # ---- egress: everything kube-apiserver sends "to the cluster" (kubelet logs/exec/proxy,
    # pod/service proxy, webhooks, aggregated APIs) goes through an HTTP CONNECT proxy on a unix
    # socket that always connects to kwok on 127.0.0.1, whatever address was asked for.  So a
    # Node or Service object with a real-world address (e.g. replayed from a recorded cluster)
    # can never make the API server send traffic anywhere but loopback.
    local egress_sock="$DIR/egress.sock"
    if ((${#egress_sock} > 100)); then # unix socket paths are limited to 108 bytes
        egress_sock="$(mktemp -d /tmp/mdlive.XXXXXX)/egress.sock"
    fi
    cat > "$DIR/egress-proxy.py" <<'PROXY'
"""HTTP CONNECT proxy on a unix socket; every tunnel goes to 127.0.0.1:PORT (kwok)."""
import asyncio
import os
import sys

SOCK, PORT = sys.argv[1], int(sys.argv[2])


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b"\r\n", 1)[0].decode("latin-1")
        print(f"{target} -> 127.0.0.1:{PORT}", flush=True)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", PORT)
    except Exception as e:
        print(f"error: {e!r}", flush=True)
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))


async def main():
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    server = await asyncio.start_unix_server(handle, path=SOCK)
    os.chmod(SOCK, 0o600)
    async with server:
        await server.serve_forever()


asyncio.run(main())
PROXY
    spawn egress-proxy python3 "$DIR/egress-proxy.py" "$egress_sock" "$kwok_port"
    echo "EGRESS_PROXY_PID=$(cat "$DIR/pids/egress-proxy")" >> "$DIR/env"
    echo "EGRESS_SOCKET=$egress_sock" >> "$DIR/env"
    wait_for egress-proxy "egress proxy socket" test -S "$egress_sock"
    cat > "$DIR/egress-selector.yaml" <<EOF
apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: $egress_sock
EOF

    # ---- kube-apiserver
    spawn kube-apiserver "$BIN/kube-apiserver" \
        --bind-address=127.0.0.1 \
        --advertise-address=127.0.0.1 \
        --secure-port="$apiserver_port" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --tls-cert-file="$DIR/pki/apiserver.crt" \
        --tls-private-key-file="$DIR/pki/apiserver.key" \
        --client-ca-file="$DIR/pki/ca.crt" \
        --token-auth-file="$DIR/pki/tokens.csv" \
        --service-account-key-file="$DIR/pki/sa.pub" \
        --service-account-signing-key-file="$DIR/pki/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range=10.96.0.0/16 \
        --authorization-mode=Node,RBAC \
        --allow-privileged=true \
        --endpoint-reconciler-type=none \
        --kubelet-client-certificate="$DIR/pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$DIR/pki/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$DIR/pki/ca.crt" \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --egress-selector-config-file="$DIR/egress-selector.yaml" \
        --audit-policy-file="$DIR/audit-policy.yaml" \
        --audit-log-path="$DIR/audit.log" \
        --audit-log-format=json \
        --audit-log-maxsize=0 \
        --v=1
    echo "APISERVER_PID=$(cat "$DIR/pids/kube-apiserver")" >> "$DIR/env"
    wait_for kube-apiserver "kube-apiserver /readyz" readyz_ok
    wait_for kube-apiserver "namespace default" http_ok /api/v1/namespaces/default

    # ---- controller-manager and scheduler
    if [[ "$controllers" == 1 ]]; then
        spawn kube-controller-manager "$BIN/kube-controller-manager" \
            --kubeconfig="$DIR/controller-manager.kubeconfig" \
            --bind-address=127.0.0.1 \
            --secure-port=0 \
            --leader-elect=false \
            --use-service-account-credentials=false \
            --service-account-private-key-file="$DIR/pki/sa.key" \
            --root-ca-file="$DIR/pki/ca.crt" \
            --cluster-signing-cert-file="$DIR/pki/ca.crt" \
            --cluster-signing-key-file="$DIR/pki/ca.key" \
            --service-cluster-ip-range=10.96.0.0/16 \
            --controllers="$kcm_controllers" \
            --v=1
        echo "CONTROLLER_MANAGER_PID=$(cat "$DIR/pids/kube-controller-manager")" >> "$DIR/env"
        spawn kube-scheduler "$BIN/kube-scheduler" \
            --kubeconfig="$DIR/scheduler.kubeconfig" \
            --bind-address=127.0.0.1 \
            --secure-port=0 \
            --leader-elect=false \
            --v=1
        echo "SCHEDULER_PID=$(cat "$DIR/pids/kube-scheduler")" >> "$DIR/env"
    else
        post /api/v1/namespaces/default/serviceaccounts application/json \
            '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}'
    fi

    # ---- kwok: CRD for per-pod Logs, config with stages and default logs
    post /apis/apiextensions.k8s.io/v1/customresourcedefinitions application/yaml \
        "$(cat "$SHARE/crd-logs.yaml")"
    wait_for kube-apiserver "CRD logs.kwok.x-k8s.io" crd_established
    : > "$DIR/pod-logs/empty.log"
    {
        # (kwok's own options are passed as flags: a KwokConfiguration in
        # this file would skip kwok's defaulting of the options not given)
        cat <<EOF
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: default-empty-logs
spec:
  logs:
  - logsFile: $DIR/pod-logs/empty.log
EOF
        # Any Node (also one created by a test with real-world addresses) is reached at
        # 127.0.0.1:KWOK_PORT: node-initialize (for not-Ready nodes, below) always sets
        # InternalIP=127.0.0.1, and this stage fixes Ready nodes.  The two are mutually exclusive
        # on purpose: kwok does not always re-run a second matching stage after a first one.
        # (Selectors compare strings only, so there is no test on the port number.)
        cat <<EOF
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: meshdoctor-node-loopback
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ['True']
    - key: '.status.addresses.[] | select( .type == "InternalIP" ) | .address'
      operator: NotIn
      values: ['127.0.0.1']
  next:
    statusTemplate: |
      addresses:
      - address: 127.0.0.1
        type: InternalIP
      daemonEndpoints:
        kubeletEndpoint:
          Port: $kwok_port
EOF
        echo "---"
        # upstream only adds an InternalIP when the node has none; always set ours
        # (statusTemplate is a strategic merge patch: addresses merge by type)
        # shellcheck disable=SC2016  # literal template text
        sed -e 's/{{ if or (not $hasInternalIP) (not $hasHostname) }}/{{ if true }}/' \
            -e 's/{{ if not $hasInternalIP }}/{{ if true }}/' "$SHARE/node-initialize.yaml"
        local f
        for f in node-heartbeat-with-lease pod-ready pod-complete pod-delete; do
            echo "---"
            cat "$SHARE/$f.yaml"
        done
    } > "$DIR/kwok.yaml"
    # shellcheck disable=SC2016  # literal template text
    if grep -q 'if not $hasInternalIP' "$DIR/kwok.yaml"; then
        die "could not patch kwok's node-initialize stage (kwok $KWOK_VERSION changed it?)"
    fi
    local i
    for ((i = 0; i < KWOK_NODES; i++)); do
        post /api/v1/nodes application/json "$(
            cat <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "kwok-node-$i",
   "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
   "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
              "kubernetes.io/hostname": "kwok-node-$i", "type": "kwok",
              "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux"}},
 "spec": {}}
EOF
        )"
    done
    HOME="$DIR/kwok-home" spawn kwok "$BIN/kwok" \
        --config="$DIR/kwok.yaml" \
        --kubeconfig="$DIR/kwok.kubeconfig" \
        --manage-all-nodes=true \
        --node-ip=127.0.0.1 \
        --node-port="$kwok_port" \
        --server-address="127.0.0.1:$kwok_port" \
        --tls-cert-file="$DIR/pki/kwok.crt" \
        --tls-private-key-file="$DIR/pki/kwok.key" \
        --enable-crds=Logs
    echo "KWOK_PID=$(cat "$DIR/pids/kwok")" >> "$DIR/env"
    wait_for kwok "kwok nodes Ready" all_nodes_ready
    if [[ "$controllers" == 1 ]]; then
        wait_for kube-controller-manager "ServiceAccount default/default" default_sa_exists
        if [[ ",$kcm_controllers," == *",node-lifecycle-controller,"* || ",$kcm_controllers," == *",*,"* ]]; then
            wait_for kube-controller-manager "not-ready taint removed from kwok nodes" nodes_untainted
        fi
    fi
    alive kube-apiserver || die "kube-apiserver died"
    if [[ -n "${LIVE_WATCH_PID:-}" ]]; then
        # stop everything when that process (e.g. the pytest session) goes away, even if it
        # is killed before its teardown runs
        # shellcheck disable=SC2016  # $0..$2 are expanded by the inner bash
        spawn watchdog bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 2; done; exec bash "$1" stop "$2"' \
            "$LIVE_WATCH_PID" "$SCRIPT_PATH" "$DIR"
    fi
    log "cluster up in $((SECONDS - t0))s: $APISERVER_URL (kubeconfigs and env in $DIR)"
}

# ----------------------------------------------------------------- stop ----

cmd_stop() {
    [[ $# -eq 1 ]] || die "usage: $0 stop DIR"
    local dir="$1" name pid n
    [[ -d "$dir/pids" ]] || { log "nothing started in $dir"; return 0; }
    pid="$(cat "$dir/pids/watchdog" 2>/dev/null)" && rm -f "$dir/pids/watchdog" &&
        [[ "$pid" != "$$" ]] && { kill -TERM "$pid" 2>/dev/null || true; }
    # clients first (all at once, they exit in ~2 s each), then etcd
    local group
    local -a pids
    for group in "kwok kube-scheduler kube-controller-manager kube-apiserver" "etcd egress-proxy"; do
        pids=()
        for name in $group; do
            pid="$(cat "$dir/pids/$name" 2>/dev/null)" || continue
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$name:$pid")
            fi
            rm -f "$dir/pids/$name"
        done
        for ((n = 0; n < 150; n++)); do
            local any=0 np
            for np in "${pids[@]}"; do
                kill -0 "${np#*:}" 2>/dev/null && any=1
            done
            ((any)) || break
            sleep 0.1
        done
        for np in "${pids[@]}"; do
            if kill -0 "${np#*:}" 2>/dev/null; then
                log "${np%%:*} (pid ${np#*:}) did not exit on TERM, killing"
                kill -KILL "${np#*:}" 2>/dev/null || true
            fi
            log "stopped ${np%%:*} (pid ${np#*:})"
        done
    done
    local sock
    sock="$(sed -n 's/^EGRESS_SOCKET=//p' "$dir/env" 2>/dev/null)"
    if [[ "$sock" == /tmp/mdlive.*/egress.sock ]]; then
        rm -rf "$(dirname "$sock")"
    fi
    [[ -f "$dir/env" ]] && sed -i '/_PID=/d' "$dir/env"
    return 0
}

cmd_status() {
    [[ $# -eq 1 ]] || die "usage: $0 status DIR"
    local name pid rc=0
    for name in egress-proxy etcd kube-apiserver kube-controller-manager kube-scheduler kwok watchdog; do
        pid="$(cat "$1/pids/$name" 2>/dev/null)" || continue
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name running (pid $pid)"
        else
            echo "$name dead (pid $pid)"
            rc=1
        fi
    done
    return $rc
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        build) cmd_build "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage 2 ;;
    esac
}

main "$@"
