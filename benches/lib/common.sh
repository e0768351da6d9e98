# Shared helpers for the image benches: medians, timing, a loopback docker-registry.

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# seconds taken by "$@" (stdout/stderr discarded)
timeit() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

ratio() { echo "scale=2; $1 / $2" | bc -l; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry DIR -> sets REG_PID and REG_ADDR
start_registry() {
    local dir=$1 port
    port=$(free_port)
    mkdir -p "$dir/data"
    cat >"$dir/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$dir/registry.yml" >/dev/null 2>&1 &
    REG_PID=$!
    REG_ADDR=127.0.0.1:$port
    for _ in $(seq 100); do
        curl -sf "http://$REG_ADDR/v2/" >/dev/null 2>&1 && return 0
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "docker-registry did not start" >&2
    return 1
}

need() {
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "SKIP: $t is not installed (apt-get install $t)"; exit 0; }
    done
}

build_hull() {
    local top=$1
    (cd "$top" && cargo build --quiet --release -p hull --bin hull -p hull-image --examples)
}
