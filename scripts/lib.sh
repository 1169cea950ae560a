# shellcheck shell=bash
# Helpers shared by the scripts in scripts/. Sourced, never run.

: "${LOG_PREFIX:=awfdrs}"

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }

die() {
    log "error: $*"
    exit 1
}

# wait_for SECONDS COMMAND...: poll COMMAND until it succeeds or time runs out.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# True when PID is gone or a zombie (an unreaped zombie still answers kill -0).
pid_gone() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} == Z ]]
}

# pid_matches PID TEXT: PID is alive and TEXT is part of its command line
# (a pid file may outlive its process, and the pid be reused).
pid_matches() {
    [[ $1 =~ ^[0-9]+$ ]] && ! pid_gone "$1" &&
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# read_pid PIDFILE TEXT: print the pid in PIDFILE if pid_matches it.
read_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    pid_matches "$pid" "$2" || return 1
    printf '%s\n' "$pid"
}

# stop_pidfile NAME PIDFILE TEXT GRACE_SECONDS: SIGTERM, wait, then SIGKILL.
stop_pidfile() {
    local name=$1 pidfile=$2 text=$3 grace=$4 pid
    if ! pid=$(read_pid "$pidfile" "$text"); then
        [[ -e $pidfile ]] && log "$name is not running (stale $pidfile removed)"
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $name (pid $pid; SIGTERM, up to ${grace}s to drain)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$grace" pid_gone "$pid"; then
        log "$name still running after ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for 5 pid_gone "$pid" || true
    fi
    rm -f "$pidfile"
}

# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
tcp_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# spawn_detached LOGFILE COMMAND...: run COMMAND in the background in its own
# session (a later Ctrl-C in this terminal does not reach it), stdin from
# /dev/null, output appended to LOGFILE, and no other inherited descriptor (a
# daemon holding a caller's pipe or lock would keep it open for ever). Sets
# SPAWNED_PID.
spawn_detached() {
    local logf=$1
    shift
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then
                eval "exec $fd>&-" 2>/dev/null || true
            fi
        done
        # Not a process group leader, so setsid execs in place: same pid.
        exec setsid "$@" </dev/null >>"$logf" 2>&1
    ) &
    # shellcheck disable=SC2034 # read by the caller
    SPAWNED_PID=$!
}

# Run as root: directly, or through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        log "need root for: $*"
        return 1
    fi
}

# apt_install PACKAGE...: install OS packages (refreshing the index if the
# first attempt fails, as on a fresh machine that never ran apt-get update).
apt_install() {
    command -v apt-get >/dev/null || return 1
    log "installing $* (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 && return 0
    as_root apt-get update -q >&2 &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

# Can `cc` compile and link a C program? rustc links through it, and ring
# (TLS for NATS) compiles C: without it the build fails with
# "linker `cc` not found" or missing crt1.o.
c_toolchain_works() {
    command -v cc >/dev/null || return 1
    local dir ok=1
    dir=$(mktemp -d) || return 1
    printf 'int main(void) { return 0; }\n' >"$dir/probe.c"
    if cc -o "$dir/probe" "$dir/probe.c" >/dev/null 2>&1; then
        ok=0
    fi
    rm -rf "$dir"
    return "$ok"
}

# C_TOOLCHAIN_PACKAGES: what Debian and Ubuntu need for c_toolchain_works.
C_TOOLCHAIN_PACKAGES=(gcc libc6-dev)

# ensure_build_tools: everything `cargo build` needs, else install it from
# the OS packages when we can (root or sudo, apt-get), else stop with the
# exact command to run.
ensure_build_tools() {
    command -v cargo >/dev/null ||
        die "cargo not found: install Rust (https://rustup.rs), then open a new shell so cargo is on PATH"
    c_toolchain_works && return 0
    local why="no C compiler and linker (cc)"
    command -v cc >/dev/null && why="cc cannot link a C program (are the C library headers and crt files missing?)"
    if ! command -v apt-get >/dev/null; then
        die "$why: install your OS's C toolchain (gcc or clang, and the C library's development files) so that \`cc\` works"
    fi
    local cmd="apt-get update && apt-get install -y ${C_TOOLCHAIN_PACKAGES[*]}"
    if [[ $EUID -ne 0 ]] && ! command -v sudo >/dev/null; then
        die "$why: as root, run: $cmd"
    fi
    [[ $EUID -eq 0 ]] || cmd="sudo apt-get update && sudo apt-get install -y ${C_TOOLCHAIN_PACKAGES[*]}"
    log "$why; the build needs one"
    apt_install "${C_TOOLCHAIN_PACKAGES[@]}" ||
        die "$why, and installing it failed: run $cmd, then try again"
    c_toolchain_works ||
        die "installed ${C_TOOLCHAIN_PACKAGES[*]} but cc still cannot link a C program: check \`cc --version\` and PATH"
    log "C toolchain ready: $(cc --version 2>/dev/null | head -n 1)"
}

# A local run's key for secrets at rest (channel, callback and webhook
# signing secrets are sealed with it), unless AWFDRS_SECRETS_KEY or
# AWFDRS_SECRETS_KEY_FILE gives one: made once as $SERVICES_DIR/secrets.key
# (mode 0600, base64 of 32 random bytes) and exported as
# AWFDRS_SECRETS_KEY_FILE. Keep it: the secrets it sealed open only with it.
ensure_secrets_key() {
    if [[ -n ${AWFDRS_SECRETS_KEY:-} || -n ${AWFDRS_SECRETS_KEY_FILE:-} ]]; then
        return 0
    fi
    local file="$SERVICES_DIR/secrets.key"
    mkdir -p "$SERVICES_DIR"
    if [[ ! -s $file ]]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$file.new" && mv -f "$file.new" "$file")
        log "made the key for secrets at rest: $file"
    fi
    chmod 600 "$file"
    export AWFDRS_SECRETS_KEY_FILE="$file"
}
