#!/usr/bin/env bash
# Steps on an offline GPU host, run from the repository root, one short command each:
#   scripts/offline_host.sh stage DIR...   gather bundle/wheel folders into /tmp/pdp-stage
#   scripts/offline_host.sh install        install the vLLM bundle, then our wheels, into $SITE
#   scripts/offline_host.sh campaign PROFILE ASSET...   materialize assets (same DAGSTER_HOME)
#   scripts/offline_host.sh background PROFILE        the whole campaign, arm by arm, detached,
#                                                      from a copy of the checkout in $RUN_DIR
#   scripts/offline_host.sh collect OUT                its log, warehouse and export into OUT
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
  background)
    # A copy, so that files of the checkout changing under a long run cannot break it; the
    # disaggregated arm first, since it is what the campaign is for.
    profile="$2"; RUN_DIR="${RUN_DIR:-/tmp/pdp-run}"
    rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
    tar -cf - --exclude=./.venv --exclude=./.gpu --exclude=./.whl . | tar -xf - -C "$RUN_DIR"
    cd "$RUN_DIR"
    setsid nohup bash -c "for assets in 'hardware_check kv_cache_analysis disaggregated_run' \
        replicated_run single_node_run comparison_report; do
          PYTHONUNBUFFERED=1 scripts/offline_host.sh campaign $profile \$assets
          echo \"== \$assets rc=\$?\"; done; echo CAMPAIGN-DONE" \
      > "$RUN_DIR/campaign.log" 2>&1 < /dev/null &
    echo "started in $RUN_DIR: tail $RUN_DIR/campaign.log" ;;
  collect)
    out="$2"; RUN_DIR="${RUN_DIR:-/tmp/pdp-run}"; cd "$RUN_DIR"
    export PYTHONPATH="$SITE:$PWD" DAGSTER_HOME="$PWD/.dagster_home"
    cp campaign.log "$out/"
    timeout 120 "$PY" -m pdpipeline export --out /tmp/pdp-export && tar czf "$out/export.tgz" -C /tmp pdp-export
    for f in warehouse/*.duckdb; do gzip -c "$f" > "$out/$(basename "$f").gz"; done
    ls -la "$out" ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
