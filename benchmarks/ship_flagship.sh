#!/usr/bin/env bash
# Ship issue 25's finished flagship runs: export, list, evaluate, draw.
#
#     bash benchmarks/ship_flagship.sh mnist fashion-mnist      # after both runs reached their 240 minutes
#
# For each dataset: refuses unless runs/flagship25/<dataset>-flagship.pt has used its whole time budget;
# replaces data/checkpoints/<dataset>.pt with its export (no optimizer state) and its line in SHA256SUMS;
# draws 64 samples at T = 0.5, 0.7 and 1.0 (seed 0) into runs/samples/flagship25-<dataset>-T.png for
# counting by eye; evaluates it on the 10,000 test images, K=1 and K=8, on one thread, timed, into
# benchmarks/results/flagship25/<dataset>-k1.json and -k8.json. Then the learning-curve figure.
# With mnist, it then scores notebook 11's flow-matching checkpoint beside the new flow again
# (benchmarks/results/flow-matching-mnist.json, about 9 CPU-minutes). The README's sample pictures are left
# alone: choose their temperature by looking first. KS="1" evaluates K=1 only. Two datasets can be shipped by
# two of these at once (one per core): the SHA256SUMS edit takes a lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
[ $# -ge 1 ] || { echo "usage: bash benchmarks/ship_flagship.sh DATASET [DATASET]" >&2; exit 2; }
mkdir -p benchmarks/results/flagship25 runs/samples
for d in "$@"; do
    run=runs/flagship25/$d-flagship.pt
    [ -f "$run" ] || { echo "error: there is no $run" >&2; exit 1; }
    "$PY" - "$run" <<'EOF'
import sys, torch
c = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
tc, seconds = c["history"]["train_config"], c["history"].get("seconds", 0.0)
if tc.get("minutes") is None or seconds < 60 * tc["minutes"]:
    sys.exit(f"error: {sys.argv[1]} has trained {seconds / 60:.1f} of {tc.get('minutes')} minutes; go on with --resume")
EOF
    out=data/checkpoints/$d.pt
    echo "replacing $out with the export of $run"
    "$PY" -c "from flowlib.training.checkpoint import export_checkpoint; export_checkpoint('$run', '$out')"
    sum=$(sha256sum "$out" | cut -d' ' -f1)
    flock "${TMPDIR:-/tmp}/flowlib-sha256sums.lock" sed -i "s|^[0-9a-f]\{64\}  $d.pt\$|$sum  $d.pt|" data/checkpoints/SHA256SUMS
    grep -q "^$sum  $d.pt\$" data/checkpoints/SHA256SUMS || { echo "error: $d.pt is not in SHA256SUMS" >&2; exit 1; }
    ls -l "$out"
    for t in 0.5 0.7 1.0; do
        "$PY" -m flowlib.figures --checkpoint "$out" --n 64 --nrow 8 --temperature $t --seed 0 \
            --out runs/samples/flagship25-$d-$t.png --force
    done
    for k in ${KS-1 8}; do
        start=$(date +%s)
        "$PY" -m flowlib.evaluate --checkpoint "$out" --split test --importance-samples $k --json \
            | tail -1 > benchmarks/results/flagship25/$d-k$k.json
        echo "$d K=$k: $(cat benchmarks/results/flagship25/$d-k$k.json) ($(( $(date +%s) - start )) s wall)"
    done
    if [ "$d" = mnist ]; then
        "$PY" benchmarks/flow_matching_mnist.py --eval-images 1000 --json benchmarks/results/flow-matching-mnist.json --force
    fi
done
"$PY" -m flowlib.figures --curve data/checkpoints/mnist.pt data/checkpoints/fashion-mnist.pt \
    --out benchmarks/results/flagship-curves.png --force
