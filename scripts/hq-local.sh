#!/usr/bin/env bash
# A local head office for trying rms-hq: a PostgreSQL cluster in ./hq-data/pg listening on a Unix
# socket in ./hq-data only (no TCP), the database `hq`, an admin token in ./hq-data/admin-token
# (mode 0600, made once), and rms-hq on 127.0.0.1:7880 in the foreground. Ctrl-C stops both.
# Usage: scripts/hq-local.sh path/to/rms-hq
set -euo pipefail
hq_bin=${1:?usage: hq-local.sh path/to/rms-hq}
data=$(pwd)/hq-data
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/$1" "${@:2}"; else "$bin/$1" "${@:2}"; fi; }
mkdir -p "$data"
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$data"; fi
if [ ! -d "$data/pg" ]; then
    pg initdb -D "$data/pg" -A trust -U postgres -E UTF8 >/dev/null
fi
pg pg_ctl -D "$data/pg" -l "$data/pg.log" -w -o "-k $data -c listen_addresses= -p 5432" start >/dev/null
trap 'pg pg_ctl -D "$data/pg" -m fast -w stop >/dev/null' EXIT
"$bin/psql" -X -q -h "$data" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'hq'" | grep -q 1 \
    || "$bin/psql" -X -q -h "$data" -U postgres -d postgres -c "CREATE DATABASE hq"
if [ ! -f "$data/admin-token" ]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/admin-token")
fi
export RMS_HQ_DATABASE_URL="host=$data port=5432 user=postgres dbname=hq"
export RMS_HQ_ADMIN_TOKEN
RMS_HQ_ADMIN_TOKEN=$(cat "$data/admin-token")
echo "head office: http://127.0.0.1:7880/hq/ (admin token in $data/admin-token)"
echo "register a store: RMS_HQ_DATABASE_URL='$RMS_HQ_DATABASE_URL' $hq_bin stores add --name 'Store 1'"
"$hq_bin" --listen 127.0.0.1:7880
