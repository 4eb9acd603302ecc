#!/usr/bin/env bash
# Notebook 08's shipped checkpoints: train, export and evaluate them (issue 11).
#
#   bash benchmarks/conditional.sh train      # the four runs below, two at a time, one thread each
#   bash benchmarks/conditional.sh export     # runs/cond/*.pt -> data/checkpoints/, without optimizer state
#   bash benchmarks/conditional.sh evaluate   # test bits/dim on all 10,000 test images (K=1), and the accuracy
#
# Every run uses the classic recipe (`--preset classic`, the default before issue 25) and measures its budget
# in process CPU time (--clock cpu), so that the class-conditional model and its unconditional baseline get
# the same computation however busy the machine is. `export` refuses to replace a shipped checkpoint; delete
# it first, then update data/checkpoints/SHA256SUMS (`sha256sum` prints the lines).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
COMPARE_MINUTES=${COMPARE_MINUTES:-50}   # class-conditional, super-resolution (7x7) and their unconditional baseline
IMAGE_MINUTES=${IMAGE_MINUTES:-25}       # inpainting (half hidden)
RUNS=runs/cond
mkdir -p "$RUNS"

train() {  # name, minutes, extra options
  local name=$1 minutes=$2
  shift 2
  "$PY" -m flowlib.train --dataset fashion-mnist --out "$RUNS/$name.pt" --minutes "$minutes" --clock cpu \
    --preset classic --eval-every-minutes 10 --no-progress "$@" > "$RUNS/$name.log" 2>&1
}

case "${1:-}" in
  train)
    train fashion-mnist-class "$COMPARE_MINUTES" --condition class &
    train fashion-mnist-uncond "$COMPARE_MINUTES" &
    wait
    train fashion-mnist-lowres "$COMPARE_MINUTES" --condition lowres &   # with BlockSumResidual (the default)
    train fashion-mnist-mask "$IMAGE_MINUTES" --condition mask &
    wait
    ;;
  export)
    for pair in class:class uncond:baseline lowres:lowres mask:mask; do
      src=$RUNS/fashion-mnist-${pair%%:*}.pt dst=data/checkpoints/fashion-mnist-${pair##*:}.pt
      if [ -e "$dst" ]; then echo "error: $dst exists; delete it first to replace it" >&2; exit 2; fi
      "$PY" -c "from flowlib.training.checkpoint import export_checkpoint as e; e('$src', '$dst')"
      (cd data/checkpoints && sha256sum "$(basename "$dst")")
    done
    ;;
  evaluate)
    for name in class baseline lowres mask; do
      echo "fashion-mnist-$name.pt"
      "$PY" -m flowlib.evaluate --checkpoint "data/checkpoints/fashion-mnist-$name.pt" --split test --json --no-progress
    done
    ;;
  *)
    echo "usage: bash benchmarks/conditional.sh train|export|evaluate" >&2
    exit 2
    ;;
esac
