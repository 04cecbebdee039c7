#!/usr/bin/env bash
# The whole test suite from a clean clone (what `npm run test:all` and .ci/run run):
#   1. the Debian packages of the real upstream servers the tests start (Dovecot, Postfix, Radicale,
#      fail2ban, PostgreSQL ...), through scripts/install-test-deps.sh;
#   2. the npm packages, exactly as locked (npm ci);
#   3. pass "sqlite": `npm test` (type-check, lint, build, vitest: the unit and the integration
#      project in one run, every postern on an SQLite file);
#   4. pass "postgres": the integration project again with POSTERN_TEST_DATABASE=postgres (one real
#      PostgreSQL for the run, a fresh database on it for every postern: test/helpers/test-database.ts),
#      the engine matrix of issue 14;
# each pass with its own JSON report next to the usual output. Ends with one line per pass
# ("sqlite: N passed, N failed (M min S s)") and one plain line summed over both, "N passed, N failed".
# Exits non-zero when a test failed or vitest itself failed in either pass (e.g. a file that could
# not load, a missing server).
#
# Extra arguments go to vitest in both passes (e.g. a test file). SKIP_INSTALL=1 skips steps 1 and 2
# on a machine that is already set up. POSTERN_TEST_ENGINES=sqlite (or postgres) runs one pass only.
set -euo pipefail
cd "$(dirname "$0")/.."

engines="${POSTERN_TEST_ENGINES:-sqlite,postgres}"
case ",$engines," in
  *,sqlite,*|*,postgres,*) ;;
  *) echo "POSTERN_TEST_ENGINES must name sqlite and/or postgres (comma-separated), not: $engines" >&2; exit 2 ;;
esac

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
  bash scripts/install-test-deps.sh
  npm ci
fi

reports="$(mktemp -d "${TMPDIR:-/tmp}/postern-vitest-XXXXXX")"
trap 'rm -rf "$reports"' EXIT

status=0
lines=()
total_passed=0
total_failed=0

# summarize NAME REPORT SECONDS: prints "N passed, N failed" for the report, exits non-zero when a
# test failed, a file failed before any of its tests ran, or there is no report at all.
summarize() {
  node -e '
    const fs = require("node:fs");
    const [name, file] = process.argv.slice(1);
    if (!fs.existsSync(file)) { console.error(name + ": vitest wrote no report (it failed before running tests)"); console.log("0 0"); process.exit(1); }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    const notRun = (r.testResults ?? []).filter((f) => f.status === "failed" && (f.assertionResults ?? []).length === 0).length;
    if (notRun > 0) console.error(name + ": " + notRun + " test file(s) failed before any of their tests ran");
    console.log(r.numPassedTests + " " + r.numFailedTests);
    process.exit(r.numFailedTests > 0 || notRun > 0 ? 1 : 0);
  ' "$1" "$2"
}

# pass NAME COMMAND...: runs one pass with its JSON report, records its line and adds to the totals.
pass() {
  local name="$1"; shift
  local report="$reports/$name.json"
  local started=$SECONDS pass_status counts
  set +e
  "$@" --reporter=default --reporter=json --outputFile="$report" "${extra[@]}"
  pass_status=$?
  counts="$(summarize "$name" "$report")" || pass_status=$((pass_status == 0 ? 1 : pass_status))
  set -e
  local took=$((SECONDS - started)) passed failed
  read -r passed failed <<<"$counts"
  lines+=("$name: $passed passed, $failed failed ($((took / 60)) min $((took % 60)) s)")
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  if [ "$pass_status" -ne 0 ] && [ "$status" -eq 0 ]; then status=$pass_status; fi
}

extra=("$@")
if [[ ",$engines," == *,sqlite,* ]]; then
  pass sqlite npm test --
else
  # `npm test`'s pretest is skipped with the SQLite pass: the binary the tests spawn must still be built.
  npm run pretest:integration
fi
if [[ ",$engines," == *,postgres,* ]]; then
  # --passWithNoTests: extra arguments that name only unit tests leave this pass nothing to run.
  pass postgres env POSTERN_TEST_DATABASE=postgres npx vitest run --project integration --passWithNoTests
fi

echo
printf '%s\n' "${lines[@]}"
echo "$total_passed passed, $total_failed failed"
exit "$status"
