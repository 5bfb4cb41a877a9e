#!/usr/bin/env bash
# The README's accuracy-under-non-idealities figures: the shipped MLP and CNN against device
# spread, stuck-at rate and wire resistance, each point a Monte Carlo over chips with read
# noise, uncorrected and with thresholds calibrated on 1000 training images.
#   bash bench/accuracy_sweeps.sh [OUT_DIR]      (default docs/figures; ~75 min on 2 cores)
# Each sweep writes OUT_DIR/<model>_<param>.png and the JSON of the run beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/figures}
mkdir -p "$out"
sweep() {   # model chips images param values
    local name=$1 chips=$2 images=$3 param=$4 values=$5
    echo "== $name $param=$values ($chips chips, $images images)" >&2
    .venv/bin/mbnn evaluate --model "models/$name.npz" --device rram --chips "$chips" \
        --images "$images" --seed 1 --calibrate 1000 --sweep "$param=$values" \
        --plot "$out/${name}_$param.png" --json > "$out/${name}_$param.json"
}
sweep mlp 3 10000 variation 0,0.1,0.2,0.3,0.5
sweep mlp 3 10000 saf-rate 0,0.01,0.02,0.05,0.1,0.2
sweep mlp 3 10000 r-wire 0,0.25,0.5,1
sweep cnn 2 2000 variation 0,0.1,0.2,0.3,0.5
sweep cnn 2 1000 saf-rate 0,0.02,0.05,0.1,0.2
sweep cnn 2 2000 r-wire 0,0.25,0.5,1
