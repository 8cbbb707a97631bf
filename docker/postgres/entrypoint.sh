#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# First start: initdb, accept password logins from the compose network, create the role and
# database named by POSTGRES_USER / POSTGRES_DB with the password in POSTGRES_PASSWORD_FILE.
set -e
bin=/usr/lib/postgresql/15/bin
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password=$(cat "${POSTGRES_PASSWORD_FILE:?}")
  "$bin/initdb" -D "$PGDATA" --auth-local=peer --auth-host=scram-sha-256 -U postgres >/dev/null
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql -v ON_ERROR_STOP=1 -q -d postgres \
    -c "CREATE ROLE \"${POSTGRES_USER:?}\" LOGIN PASSWORD '$password'" \
    -c "CREATE DATABASE \"${POSTGRES_DB:?}\" OWNER \"$POSTGRES_USER\""
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$bin/postgres" -D "$PGDATA"
