#!/usr/bin/env bash
# make test-report: trains a small run on a synthetic CIFAR-format set, writes its report with
# `vit report`, checks the page loads nothing from outside and runs no script, renders it in
# headless Chromium (Debian chromium) and checks the screenshot is not blank
# (scripts/check-screenshot.py). Needs `make build` first; installs chromium if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
vit=${BUILD_DIR:-build}/vit
work=$(mktemp -d /tmp/vit-test-report.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 scripts/make-shapes-cifar.py "$work/data" --train 600 --test 200 > /dev/null
"$vit" train --preset cifar --data "cifar10:$work/data" --depth 2 --epochs 2 --out "$work/run" \
    --cache-dir off > /dev/null
"$vit" report "$work/run" --out "$work/report.html"
html="$work/report.html"
for section in "Training" "Evaluation" "Most confident mistakes" "Where the model looks"; do
  grep -q "<h2>$section</h2>" "$html" || { echo "test-report: no '$section' section" >&2; exit 1; }
done
if grep -Eq '<script|<link|href=|url\(' "$html" || grep -Eo 'src="[^"]*' "$html" | grep -vq '^src="data:'; then
  echo "test-report: the page refers to something outside it" >&2
  exit 1
fi
timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1200,2400 --screenshot="$work/shot.png" "file://$html" > "$work/chromium.log" 2>&1 \
  || { cat "$work/chromium.log" >&2; exit 1; }
python3 scripts/check-screenshot.py "$work/shot.png" 1200 2400
mkdir -p build
cp "$work/shot.png" build/report-screenshot.png
echo "test-report: the report renders (screenshot: build/report-screenshot.png)"
