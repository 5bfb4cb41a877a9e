#!/usr/bin/env bash
# The README's in-situ training figures (golden.analog.in_situ): the MLP (the shipped recipe
# compressed to 10 epochs) in software and with an RRAM and a PCM chip in the loop, and the
# paper-sized 784-250-10 MLP in software, in situ on both devices and with the naive scheme
# (every update programmed), the MLP on RRAM with epsilon 0.5, then the curves
# (docs/figures/in_situ_*.png). One run per line; each writes a model file and its JSON; a
# run whose model file exists is not run again.
#
#   bash bench/in_situ_training.sh [OUT_DIR]   (default build/in_situ; about 1 h 30 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/in_situ}
mkdir -p "$out"
mbnn=.venv/bin/mbnn
one() {  # name, then mbnn train arguments
    local name=$1; shift
    [ -s "$out/$name.npz" ] || "$mbnn" train "$@" --out "$out/$name.npz" --json > "$out/$name.json"
    echo "$name: $out/$name.npz"
}
one mlp250_software --arch mlp250 --seed 1
for device in rram pcm; do
    one "mlp250_$device" --arch mlp250 --seed 1 --in-situ --device "$device"
done
one mlp250_rram_naive --arch mlp250 --seed 1 --in-situ --device rram --scheme naive
one mlp_software --arch mlp --epochs 10 --seed 1
for device in rram pcm; do
    one "mlp_$device" --arch mlp --epochs 10 --seed 1 --in-situ --device "$device"
done
one mlp_rram_e0.5 --arch mlp --epochs 10 --seed 1 --in-situ --device rram --epsilon 0.5
.venv/bin/python bench/plot_in_situ.py "$out"
