#!/usr/bin/env bash
# Steps on an offline GPU host, run from the repository root, one short command each:
#   scripts/offline_host.sh stage DIR...   gather bundle/wheel folders into /tmp/pdp-stage
#   scripts/offline_host.sh install        install the vLLM bundle, then our wheels, into $SITE
#   scripts/offline_host.sh campaign PROFILE ASSET...   materialize assets (same DAGSTER_HOME)
set -euo pipefail
SITE="${SITE:-/tmp/site}"
STAGE=/tmp/pdp-stage
PY="${PYTHON:-python3}"
case "${1:-}" in
  stage)
    shift; mkdir -p "$STAGE"
    for dir in "$@"; do cp -r "$dir"/. "$STAGE"/; done
    ls "$STAGE" | wc -l ;;
  install)
    SITE="$SITE" PYTHON="$PY" bash "$STAGE/install.sh" "$STAGE"
    ours=$(cd "$STAGE" && ls *.whl | grep -v -F -f <(sed -n 's/^[0-9a-f]\{64\}  //p' "$STAGE/install.sh") || true)
    (cd "$STAGE" && "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" $ours)
    echo "installed into $SITE: $(echo $ours | wc -w) project wheels" ;;
  campaign)
    shift; profile="$1"; shift
    export PYTHONPATH="$SITE:$PWD" DAGSTER_HOME="$PWD/.dagster_home" VLLM_USE_FLASHINFER_SAMPLER=0
    "$PY" -m pdpipeline campaign "$profile" ${1:+--assets "$@"} ;;
  *) sed -n '2,5p' "$0"; exit 2 ;;
esac
