#!/usr/bin/env bash
# Checks the alerting rules of k8s/base/prometheusrule.yaml with promtool
# (Debian's prometheus package) and runs their unit tests
# (tests/prometheus/alerts.test.yaml). The PrometheusRule's `spec` is a
# Prometheus rules file; it is extracted next to a copy of the tests.
#   scripts/prometheus-rules.sh                 # check + unit tests
#   scripts/prometheus-rules.sh --extract FILE  # only write the rules file (tests/e2e/prometheus.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${OMNIBIZ_TOOLS:-$HOME/.cache/omnibiz-tools}
# PyYAML: from the venv scripts/k8s-validate.sh keeps (yamllint depends on
# it), else the system's.
PY=python3
[ -x "$TOOLS/venv/bin/python3" ] && PY=$TOOLS/venv/bin/python3

extract() {
  "$PY" - k8s/base/prometheusrule.yaml "$1" <<'PY'
import sys, yaml
with open(sys.argv[1]) as f:
    rule = yaml.safe_load(f)
assert rule["kind"] == "PrometheusRule", rule["kind"]
with open(sys.argv[2], "w") as f:
    yaml.safe_dump(rule["spec"], f, sort_keys=False)
PY
}

if [ "${1:-}" = "--extract" ]; then
  extract "$2"
  exit 0
fi
command -v promtool >/dev/null || scripts/services.sh ops-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
extract "$work/omnibiz-rules.yaml"
cp tests/prometheus/alerts.test.yaml "$work/"
promtool check rules "$work/omnibiz-rules.yaml"
promtool test rules "$work/alerts.test.yaml"
