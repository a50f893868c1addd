# Install (if needed) and start a throw-away PostgreSQL server on loopback for
# the SQL reader tests. Exports WORKBENCH_PG_URL (no password in it: the
# password travels in WORKBENCH_PG_PASSWORD, as users are told to do).
PG_PORT=${PG_PORT:-55432}
PG_DIR=${PG_DIR:-/tmp/workbench-ci-pg}

_pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
  if [ -z "$(_pg_bin)" ]; then
    echo "installing PostgreSQL from Debian packages"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
  fi
  local bin; bin=$(_pg_bin)
  local run=()
  if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
  stop_postgres  # a server left from an earlier call would hold the port
  rm -rf "$PG_DIR"; mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  export WORKBENCH_PG_PASSWORD="ci-secret-$$-$RANDOM"
  local pwfile="$PG_DIR/pw"
  echo "$WORKBENCH_PG_PASSWORD" > "$pwfile"
  [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U workbench --pwfile="$pwfile" -A scram-sha-256 >/dev/null
  rm -f "$pwfile"
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null
  export WORKBENCH_PG_URL="postgresql://workbench@127.0.0.1:$PG_PORT/postgres"
  echo "PostgreSQL started on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  local bin; bin=$(_pg_bin)
  local run=()
  if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
}
