#!/usr/bin/env bash
# The whole test suite from a clean clone (what `npm run test:all` and .ci/run run):
#   1. the Debian packages of the real upstream servers the tests start (Dovecot, Postfix, Radicale,
#      fail2ban), through scripts/install-test-deps.sh;
#   2. the npm packages, exactly as locked (npm ci);
#   3. `npm test` (type-check, build, vitest: the unit and the integration project in one run) with
#      one JSON report over both next to the usual output;
# and ends with one plain line, "N passed, N failed", computed from that report. Exits non-zero
# when a test failed or vitest itself failed (e.g. a file that could not load, a missing server).
#
# Extra arguments go to vitest (e.g. a test file). SKIP_INSTALL=1 skips steps 1 and 2 on a
# machine that is already set up.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
  bash scripts/install-test-deps.sh
  npm ci
fi

report="$(mktemp "${TMPDIR:-/tmp}/postern-vitest-XXXXXX.json")"
trap 'rm -f "$report"' EXIT
rm -f "$report" # vitest writes it; an empty file left by mktemp must not pass for a report

set +e
npm test -- --reporter=default --reporter=json --outputFile="$report" "$@"
status=$?
set -e

summary="$(node -e '
  const fs = require("node:fs");
  const file = process.argv[1];
  if (!fs.existsSync(file)) { console.error("vitest wrote no report (it failed before running tests)"); console.log("0 passed, 0 failed"); process.exit(1); }
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  const notRun = (r.testResults ?? []).filter((f) => f.status === "failed" && (f.assertionResults ?? []).length === 0).length;
  if (notRun > 0) console.error(notRun + " test file(s) failed before any of their tests ran");
  console.log(r.numPassedTests + " passed, " + r.numFailedTests + " failed");
  process.exit(r.numFailedTests > 0 || notRun > 0 ? 1 : 0);
' "$report")" || status=$((status == 0 ? 1 : status))

echo
echo "$summary"
exit "$status"
