#!/bin/sh
# Runs the MUC suite without CMake/ctest: tests/muc/run-local.sh [sqlite|postgresql|both] [unittest args]
# Binaries default to build/h-muc; override with TC_BROKER, TC_CTL, TC_TEST_PG.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${TC_BUILD_DIR:-$root/build/h-muc}
export TC_BROKER="${TC_BROKER:-$build/broker/tcbroker}"
export TC_CTL="${TC_CTL:-$build/broker/tcctl}"
if [ -z "${TC_TEST_PG:-}" ] && [ -x "$build/tests/support/tc-test-pg" ]; then
  export TC_TEST_PG="$build/tests/support/tc-test-pg"
fi
export PYTHONDONTWRITEBYTECODE=1
backends=${1:-both}
[ $# -gt 0 ] && shift
[ "$backends" = both ] && backends="sqlite postgresql"
status=0
for backend in $backends; do
  echo "== TC_MUC_BACKEND=$backend"
  TC_MUC_BACKEND=$backend /usr/bin/python3 -B -m unittest discover -s "$here" -p 'test_*.py' "$@" \
    || status=1
done
exit $status
