#!/usr/bin/env bash
# Makes sure the Postgres and Redis servers that Procura needs are reachable and
# that the database named in DATABASE_URL exists. Idempotent; prints nothing when
# everything is already in place.
#
#   DATABASE_URL        default postgres://postgres@127.0.0.1:5432/procura
#   REDIS_URL           default redis://127.0.0.1:6379
#   PROCURA_NO_INSTALL  set to 1 to never install or start anything
#
# When a service on localhost is unreachable and we run as root on Debian/Ubuntu,
# the missing packages are installed (apt) and the servers are started directly,
# without systemd (containers have none). Otherwise it explains what is missing
# and exits 1.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/procura}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATABASE_URL REDIS_URL

WAIT_SECONDS=30

log() { printf 'ensure-services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v node >/dev/null 2>&1 || die "node is required but was not found on PATH"

# url_hostport URL DEFAULT_PORT -> "host port" (IPv6 brackets stripped)
url_hostport() {
  node --input-type=commonjs -e '
    try {
      const u = new URL(process.argv[1]);
      const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
      if (!host) process.exit(1);
      console.log(host + " " + (u.port || process.argv[2]));
    } catch { process.exit(1); }
  ' "$1" "$2"
}

# reachable HOST PORT -> exit 0 when a TCP connection succeeds within 1 s
reachable() {
  node --input-type=commonjs -e '
    const s = require("net").connect({ host: process.argv[1], port: Number(process.argv[2]) });
    const done = (code) => { s.destroy(); process.exit(code); };
    s.setTimeout(1000, () => done(1));
    s.on("connect", () => done(0));
    s.on("error", () => done(1));
  ' "$1" "$2"
}

wait_for() { # NAME HOST PORT
  local deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    reachable "$2" "$3" && return 0
    sleep 0.5
  done
  log "$1 did not come up on $(addr "$2" "$3") within ${WAIT_SECONDS}s"
  return 1
}

addr() { if [[ "$1" == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }

is_local() {
  case "$1" in
    localhost | 127.* | ::1) return 0 ;;
    *) return 1 ;;
  esac
}

# Why we will not install/start a service on HOST ourselves (empty: we may).
no_manage_reason() {
  if [[ "${PROCURA_NO_INSTALL:-}" == 1 ]]; then
    echo "automatic install/start disabled (PROCURA_NO_INSTALL=1)"
  elif ! is_local "$1"; then
    echo "host $1 is not local, so it is not started here"
  elif [[ "$(id -u)" != 0 ]]; then
    echo "not root, so it cannot be installed/started automatically"
  elif [[ ! -f /etc/debian_version ]]; then
    echo "not Debian/Ubuntu, so it cannot be installed automatically"
  fi
}

hp="$(url_hostport "$DATABASE_URL" 5432)" || die "DATABASE_URL is not a valid URL with a host"
read -r PG_HOST PG_PORT <<<"$hp"
hp="$(url_hostport "$REDIS_URL" 6379)" || die "REDIS_URL is not a valid URL with a host"
read -r REDIS_HOST REDIS_PORT <<<"$hp"

problems=()
MANAGED_PG=0
need_pg=0
need_redis=0

if ! reachable "$PG_HOST" "$PG_PORT"; then
  reason="$(no_manage_reason "$PG_HOST")"
  if [[ -n "$reason" ]]; then
    problems+=("Postgres is not reachable at $(addr "$PG_HOST" "$PG_PORT") (DATABASE_URL); $reason")
  else
    need_pg=1
  fi
fi
if ! reachable "$REDIS_HOST" "$REDIS_PORT"; then
  reason="$(no_manage_reason "$REDIS_HOST")"
  if [[ -n "$reason" ]]; then
    problems+=("Redis is not reachable at $(addr "$REDIS_HOST" "$REDIS_PORT") (REDIS_URL); $reason")
  else
    need_redis=1
  fi
fi

# ---------------------------------------------------------------- install ---
pg_installed() {
  command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

packages=()
((need_pg)) && ! pg_installed && packages+=(postgresql)
((need_redis)) && ! command -v redis-server >/dev/null 2>&1 && packages+=(redis-server)

if ((${#packages[@]})); then
  apt_log="$(mktemp)"
  log "installing ${packages[*]} with apt-get (this takes a minute)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get failed to install ${packages[*]}; start Postgres and Redis yourself or run: docker compose up -d postgres redis"
  fi
  rm -f "$apt_log"
  [[ " ${packages[*]} " == *" postgresql "* ]] && MANAGED_PG=1
  # Package scripts may already have started the servers.
  ((need_pg)) && reachable "$PG_HOST" "$PG_PORT" && need_pg=0
  ((need_redis)) && reachable "$REDIS_HOST" "$REDIS_PORT" && need_redis=0
fi

# ------------------------------------------------------------------ start ---
# "version name" of the cluster configured for PG_PORT (empty when none).
pg_cluster_for_port() {
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }'
}

start_postgres() {
  local cluster ver name out
  cluster="$(pg_cluster_for_port)"
  if [[ -z "$cluster" ]]; then
    if [[ -n "$(pg_lsclusters -h 2>/dev/null)" ]]; then
      problems+=("Postgres is not reachable at $(addr "$PG_HOST" "$PG_PORT") and no local cluster is configured for port $PG_PORT (see pg_lsclusters)")
      return 1
    fi
    ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    name=main
    log "creating Postgres $ver cluster '$name' on port $PG_PORT"
    if ! out="$(pg_createcluster --port "$PG_PORT" "$ver" "$name" 2>&1)"; then
      printf '%s\n' "$out" >&2
      problems+=("pg_createcluster $ver $name failed")
      return 1
    fi
  else
    read -r ver name <<<"$cluster"
  fi
  log "starting Postgres cluster $ver/$name"
  if ! out="$(pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start 2>&1)"; then
    # "already running" is fine; anything else is reported when the wait fails.
    [[ "$out" == *"already running"* ]] || printf '%s\n' "$out" >&2
  fi
  MANAGED_PG=1
  wait_for Postgres "$PG_HOST" "$PG_PORT" || {
    problems+=("Postgres cluster $ver/$name did not start (see /var/log/postgresql/postgresql-$ver-$name.log)")
    return 1
  }
}

start_redis() {
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  local args=(--daemonize yes --port "$REDIS_PORT" --save "" --appendonly no --dir /tmp)
  # "-::1" (optional IPv6 bind) needs Redis >= 7; fall back to IPv4 only.
  redis-server "${args[@]}" --bind 127.0.0.1 -::1 >/dev/null 2>&1 ||
    redis-server "${args[@]}" --bind 127.0.0.1 >/dev/null 2>&1 || true
  wait_for Redis "$REDIS_HOST" "$REDIS_PORT" || {
    problems+=("redis-server did not start on port $REDIS_PORT")
    return 1
  }
}

if ((need_pg)); then start_postgres || true; fi
if ((need_redis)); then start_redis || true; fi

if ((${#problems[@]})); then
  {
    echo "ensure-services: Procura needs Postgres and Redis, but:"
    for p in "${problems[@]}"; do echo "  - $p"; done
    echo "Start them yourself (and point DATABASE_URL / REDIS_URL at them), or use Docker:"
    echo "  docker compose up -d postgres redis"
    echo "(that publishes Postgres on 127.0.0.1:5432 and Redis on 127.0.0.1:6379)"
  } >&2
  exit 1
fi

# ---------------------------------------------------------------- database ---
# Trust local TCP connections for the URL's user. Dev setup only, and only on a
# cluster this script installed or started.
trust_local_connections() {
  local cluster ver name hba user
  cluster="$(pg_cluster_for_port)"
  [[ -n "$cluster" ]] || return 1
  read -r ver name <<<"$cluster"
  hba="/etc/postgresql/$ver/$name/pg_hba.conf"
  [[ -f "$hba" ]] || return 1
  user="$(node --input-type=commonjs -e 'console.log(decodeURIComponent(new URL(process.argv[1]).username) || "postgres")' "$DATABASE_URL")"
  [[ "$user" =~ ^[a-zA-Z0-9_]+$ ]] || return 1
  if ! grep -q '# added by procura ensure-services' "$hba"; then
    log "allowing passwordless local TCP connections for user $user in $hba (dev only)"
    {
      echo "# added by procura ensure-services (dev only)"
      echo "host all $user 127.0.0.1/32 trust"
      echo "host all $user ::1/128 trust"
      cat "$hba"
    } >"$hba.procura.tmp"
    chown --reference="$hba" "$hba.procura.tmp" && chmod --reference="$hba" "$hba.procura.tmp"
    mv "$hba.procura.tmp" "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >/dev/null
  sleep 1 # reload only signals the postmaster
}

status=0
err_file="$(mktemp)"
node "$SCRIPT_DIR/create-db.mjs" 2>"$err_file" || status=$?
if ((status == 3 && MANAGED_PG)) && trust_local_connections; then
  status=0
  node "$SCRIPT_DIR/create-db.mjs" 2>"$err_file" || status=$?
fi
cat "$err_file" >&2
rm -f "$err_file"
if ((status == 3)); then
  log "hint: put the password in DATABASE_URL, or allow trust auth for local connections in pg_hba.conf (dev only)"
fi
exit "$status"
