# shellcheck shell=bash
# Shared helpers for the scripts (sourced, not run).
#
# Environment:
#   KRAWL_NOIDA_BIN        broker launcher (default: noida-db from PATH); the
#                          same variable the Rust test harness reads
#   KRAWL_NOIDA_WAIT       seconds start_noida waits for the port when no
#                          WAIT argument is given (default: 30)
#   KRAWL_NOIDA_STOP_WAIT  seconds stop_noida waits after SIGTERM before
#                          SIGKILL (default: 10)

# free_port: print a free TCP port on 127.0.0.1 (asks the kernel via python3;
# without python3, probes random ports).
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "free_port: no free port found" >&2
    return 1
}

# start_noida PORT DATA_DIR LOG [WAIT]: start noida-db in its own session (the
# `noida-db` console script is a Python wrapper around the real server that
# does not forward signals, so the whole process group is what must be
# stopped), wait up to WAIT seconds (default $KRAWL_NOIDA_WAIT, else 30) for
# the port, and set NOIDA_PGID. On failure, print the log and return 1
# (NOIDA_PGID is still set then, so `stop_noida` cleans up). Pair with
# `stop_noida`.
start_noida() {
    local port=$1 dir=$2 log=$3 secs=${4:-${KRAWL_NOIDA_WAIT:-30}}
    local bin=${KRAWL_NOIDA_BIN:-noida-db} i
    [[ $secs =~ ^[0-9]+$ ]] || { echo "start_noida: wait '$secs' is not a number of seconds" >&2; return 1; }
    command -v "$bin" >/dev/null 2>&1 ||
        { echo "start_noida: broker launcher '$bin' not found (set KRAWL_NOIDA_BIN)" >&2; return 1; }
    if [[ $- == *m* ]]; then
        # Job control is on: the background job already gets its own process
        # group (PGID = $!), while setsid would fork and leave $! pointing at
        # a process that has exited.
        "$bin" start --only kafka --kafka-port "$port" --data-dir "$dir" >"$log" 2>&1 &
    else
        # Not a group leader, so setsid execs in place: PID = PGID = $!.
        setsid "$bin" start --only kafka --kafka-port "$port" --data-dir "$dir" >"$log" 2>&1 &
    fi
    NOIDA_PGID=$!
    for ((i = 0; i < 10#$secs * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        if ! kill -0 "$NOIDA_PGID" 2>/dev/null; then
            cat "$log" >&2
            echo "start_noida: noida-db exited before listening on 127.0.0.1:$port" >&2
            return 1
        fi
        sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    cat "$log" >&2
    echo "start_noida: noida-db did not open 127.0.0.1:$port in $secs s" >&2
    return 1
}

# stop_noida: stop the process group started by start_noida (SIGTERM, then
# SIGKILL if any of it is still there after $KRAWL_NOIDA_STOP_WAIT seconds)
# and clear NOIDA_PGID. A no-op when nothing was started; always returns 0.
stop_noida() {
    local pgid=${NOIDA_PGID:-} secs=${KRAWL_NOIDA_STOP_WAIT:-10} i
    [[ -n $pgid ]] || return 0
    [[ $secs =~ ^[0-9]+$ ]] || secs=10
    NOIDA_PGID=
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 10#$secs * 10; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
    return 0
}

# ensure_gnu_time: make /usr/bin/time (GNU time, for `-v` peak RSS) available,
# installing Debian's `time` package when it is missing.
ensure_gnu_time() {
    [[ -x /usr/bin/time ]] && return 0
    echo "installing /usr/bin/time (Debian package 'time')" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends time; } >/dev/null
}

# ensure_noida: set KRAWL_NOIDA_BIN (what start_noida runs) to the broker:
# KRAWL_NOIDA_BIN if already set, else the server binary shipped in the
# noida_db package (run directly, one process less than the console script),
# installing noida-db==0.2.3 with pip when it is missing.
ensure_noida() {
    local py=${PYTHON:-python3} bin
    _noida_pkg_bin() {
        "$py" -c 'from importlib.resources import files; p = files("noida_db").joinpath("noida-db"); print(p if p.is_file() else "")' 2>/dev/null || true
    }
    bin=${KRAWL_NOIDA_BIN:-$(_noida_pkg_bin)}
    if [[ -z "$bin" ]]; then
        echo "installing noida-db==0.2.3 (pip)" >&2
        "$py" -m pip install --quiet --disable-pip-version-check noida-db==0.2.3 || return 1
        bin=$(_noida_pkg_bin)
        [[ -n "$bin" ]] || return 1
    fi
    if [[ -f "$bin" && ! -x "$bin" ]]; then chmod +x "$bin"; fi
    command -v "$bin" >/dev/null || return 1
    KRAWL_NOIDA_BIN=$bin
}

# start_krawl_stack KRAWL DIR [KRAWL_FLAG...]: start the reference control plane
# (`krawl controlplane`, SQLite database in DIR, random admin and bootstrap
# tokens in files only this user can read) and an agent (`krawl run`) that may
# reach brokers on 127.0.0.1, then wait up to 30 s for the agent's /readyz.
# KRAWL_FLAGs (e.g. --log-format json) go before both subcommands. Sets CP_PID
# and AGENT_PID and exports KRAWL_CP_URL and KRAWL_CP_ADMIN_TOKEN (what
# `krawl jobs` reads). Logs: DIR/controlplane.log, DIR/agent.log; the agent's
# config: DIR/krawl.toml. On failure, prints both logs and returns 1 (the PIDs
# are set then, so stop_krawl_stack cleans up).
start_krawl_stack() {
    local krawl=$1 dir=$2
    shift 2
    (umask 077
     head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/admin.token"
     head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/bootstrap.token")
    local cp_port health_port
    cp_port=$(free_port) && health_port=$(free_port) || return 1
    export KRAWL_CP_URL="http://127.0.0.1:$cp_port"
    KRAWL_CP_ADMIN_TOKEN=$(cat "$dir/admin.token")
    export KRAWL_CP_ADMIN_TOKEN
    "$krawl" "$@" controlplane --listen "127.0.0.1:$cp_port" --db "$dir/controlplane.db" \
        --admin-token-file "$dir/admin.token" --bootstrap-token-file "$dir/bootstrap.token" \
        >"$dir/controlplane.log" 2>&1 &
    CP_PID=$!
    cat >"$dir/krawl.toml" <<TOML
# The agent's config (deploy/krawl.example.toml documents every key).
[agent]
name = "local-agent"
health_listen = "127.0.0.1:$health_port"

[control_plane]
url = "$KRAWL_CP_URL"

[control_plane.auth]
bootstrap_token = "file://$dir/bootstrap.token"

[policy]
# The clusters this agent may connect to (nothing is allowed unless listed).
allowed_bootstrap_servers = ["127.0.0.1:*"]
TOML
    "$krawl" "$@" run --config "$dir/krawl.toml" >"$dir/agent.log" 2>&1 &
    AGENT_PID=$!
    local _
    for _ in $(seq 1 150); do
        curl -fsS "http://127.0.0.1:$health_port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    cat "$dir/agent.log" "$dir/controlplane.log" >&2
    echo "start_krawl_stack: the agent did not become ready (127.0.0.1:$health_port/readyz) in 30 s" >&2
    return 1
}

# stop_krawl_stack: SIGTERM the agent, then the control plane (each shuts down
# gracefully), waiting for each; safe to call when they never started.
stop_krawl_stack() {
    local pid
    for pid in "${AGENT_PID:-}" "${CP_PID:-}"; do
        [[ -n $pid ]] || continue
        if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
    done
    AGENT_PID="" CP_PID=""
}

# extract_vs_job KRAWL BOOT DIR I AGENT_LOG: one round of "krawl extract alone vs the same
# extraction as a kafka.extract job through the running control plane and agent"
# (scripts/bench-agent.sh, scripts/bench-latency.sh). Writes DIR/spec.json once,
# DIR/direct-I.ndjson and DIR/via-I.ndjson; sets EVJ_DIRECT and EVJ_VIA (wall seconds, submit to
# succeeded for the job) and EVJ_DIRECT_TOPICS, EVJ_VIA_TOPICS (topic records in each). Returns 1
# (after printing the logs) when the extract or the job failed.
# shellcheck disable=SC2034  # the EVJ_* globals are this function's results, read by the caller
extract_vs_job() {
    local krawl=$1 boot=$2 dir=$3 i=$4 agent_log=$5 t0 id
    local py=${PYTHON:-python3}
    _evj_now() { date +%s.%N; }
    _evj_since() { "$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(_evj_now)"; }
    [[ -f "$dir/spec.json" ]] || printf '{"kafka":{"bootstrap_servers":["%s"]}}\n' "$boot" >"$dir/spec.json"
    t0=$(_evj_now)
    "$krawl" extract --bootstrap-servers "$boot" --output "$dir/direct-$i.ndjson" 2>"$dir/direct-$i.err" ||
        { cat "$dir/direct-$i.err" >&2; echo "extract_vs_job: krawl extract failed" >&2; return 1; }
    EVJ_DIRECT=$(_evj_since "$t0")
    t0=$(_evj_now)
    "$krawl" jobs submit --kind kafka.extract --spec "$dir/spec.json" --wait --json >"$dir/job-$i.json" ||
        { cat "$dir/job-$i.json" "$agent_log" >&2; echo "extract_vs_job: the job failed" >&2; return 1; }
    EVJ_VIA=$(_evj_since "$t0")
    id=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$dir/job-$i.json")
    "$krawl" jobs results "$id" --output "$dir/via-$i.ndjson"
    EVJ_DIRECT_TOPICS=$(grep -c '"kind":"topic"' "$dir/direct-$i.ndjson")
    EVJ_VIA_TOPICS=$(grep -c '"kind":"topic"' "$dir/via-$i.ndjson")
}

# bench_krawl ROOT: prints the krawl binary a benchmark measures: $KRAWL_BIN when it is set (it
# must be executable; nothing is built), else a release build of ROOT's working tree
# (target/release/krawl). Progress and errors go to stderr; non-zero when there is no binary.
bench_krawl() {
    local root=$1
    if [[ -n "${KRAWL_BIN:-}" ]]; then
        [[ -x $KRAWL_BIN ]] || { echo "KRAWL_BIN=$KRAWL_BIN is not an executable" >&2; return 1; }
        echo "using $KRAWL_BIN (KRAWL_BIN; nothing is built)" >&2
        printf '%s\n' "$KRAWL_BIN"
    else
        echo "building krawl (cargo build --release -p krawl-cli)" >&2
        (cd "$root" && cargo build --release --quiet -p krawl-cli) || return 1
        printf '%s\n' "$root/target/release/krawl"
    fi
}
