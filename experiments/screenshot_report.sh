#!/usr/bin/env bash
# A report opened as a person would: headless Chromium renders DIR/report.html to a PNG.
#   bash experiments/screenshot_report.sh runs/demo [out.png] [height]
# Needs Debian's chromium (apt-get install chromium). Writes experiments/results/report.png.
set -euo pipefail
dir=${1:?usage: screenshot_report.sh REPORT_DIR [OUT.png] [HEIGHT]}
out=${2:-$(dirname "$0")/results/report.png}
height=${3:-9000}
page=$(realpath "$dir/report.html")
[ -f "$page" ] || { echo "no report.html in $dir (run: mesa report $dir)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1200,"$height" \
  --screenshot="$out" "file://$page" 2>/dev/null
echo "wrote $out"
