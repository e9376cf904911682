#!/usr/bin/env bash
# Re-create the results shipped in the repository (cpu profile, real MNIST/FashionMNIST).
#
#   TL_STUDY_DATA=/path/to/data tools/reproduce_results.sh [step ...]
#
# Steps (default: all, in this order): mnist fmnist cross_mf cross_fm conditions surgical clustering protocols
# benchmark render. `render` re-executes the visualizations notebooks and example_visualizations.ipynb from
# the results (no training) and puts them back in place without papermill's injected-parameters cell (it would
# override the notebook's defaults in JupyterLab), so they are committed with their outputs.
# Each step runs one notebook with papermill from its folder; results are appended run by run to the
# folder's results/, so an interrupted step resumes where it stopped when run again. Executed copies go to
# *.out.ipynb (git-ignored); wall times are appended to results_timings.tsv at the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TL_STUDY_DATA:?set TL_STUDY_DATA to the folder holding MNIST/ and FashionMNIST/}"
export TL_STUDY_DATA TL_STUDY_PROFILE=cpu
TIMINGS=results_timings.tsv

run() {  # run NAME FOLDER NOTEBOOK [papermill args...]
    local name=$1 folder=$2 notebook=$3
    shift 3
    local start end
    start=$(date +%s)
    echo "== $name: $folder/$notebook $* ($(date -u +%H:%M:%S) UTC)"
    # the profile comes from $TL_STUDY_PROFILE (not a papermill parameter), so a rendered copy of the
    # notebook still runs in the smoke profile under nbval
    papermill "$folder/$notebook" "$folder/${notebook%.ipynb}.$name.out.ipynb" --cwd "$folder" "$@"
    end=$(date +%s)
    printf '%s\t%s/%s\t%s\t%s\n' "$name" "$folder" "$notebook" "$((end - start))" "$(date -u +%FT%TZ)" >> "$TIMINGS"
    echo "== $name done in $((end - start)) s"
}

render() {  # render FOLDER NOTEBOOK: execute it from the results into a copy, then replace the notebook by
    # the copy without papermill's injected-parameters cell (it would override the defaults in JupyterLab);
    # a failed render leaves the committed notebook as it was
    local folder=$1 notebook=$2
    local copy="$folder/${notebook%.ipynb}.render.out.ipynb"
    papermill "$folder/$notebook" "$copy" --cwd "$folder"
    python tools/build_notebooks.py --strip-injected "$copy"
    mv "$copy" "$folder/$notebook"
}

step() {
    case $1 in
        mnist)      run mnist MNIST truncation_experiment.ipynb ;;  # baseline + FR + FT on the same subsets
        fmnist)     run fmnist FashionMNIST empirical_experiment.ipynb -p class_split regular ;;
        # 10 classes on both sides: twice the data per fraction, so fewer repeats at the largest fraction
        cross_mf)   run cross_mf cross_domain empirical_experiment.ipynb -p source_dataset MNIST \
                        -p target_dataset FashionMNIST -y "repeats: [8, 8, 4]" ;;
        # FashionMNIST → MNIST: fewer repeats at 10 % to fit the session this was run in
        cross_fm)   run cross_fm cross_domain empirical_experiment.ipynb -p source_dataset FashionMNIST \
                        -p target_dataset MNIST -y "repeats: [8, 8, 3]" ;;
        # AnB/AnB+/BnB/BnB+, surgical, strategies, TTA: ~16 arms that cannot use the prefix cache
        conditions) run conditions MNIST transfer_conditions.ipynb -y "percentages: [0.01, 0.1]" \
                        -y "repeats: [8, 2]" ;;
        # surgical fine-tuning MNIST → FashionMNIST, on a 12,000-image slice (val 1,200) to fit the session
        surgical)   run surgical cross_domain surgical_finetuning.ipynb -y "percentages: [0.01, 0.1]" \
                        -y "repeats: [8, 2]" -y 'overrides: {"train_limit": 12000}' ;;
        clustering) run clustering MNIST clustering_experiment.ipynb ;;
        # the same grid under the original, steps, realistic and fixed-budget protocols (README, "Protocols"):
        # MNIST 0-4 -> 5-9 and FashionMNIST -> MNIST, 16/16/8 repeats at 0.1/1/10 %; the notebooks are then
        # committed with their outputs, like the visualizations (nothing left to train on a second run)
        protocols)
            run protocols_mnist MNIST protocol_sensitivity.ipynb
            run protocols_fm cross_domain protocol_sensitivity.ipynb
            render MNIST protocol_sensitivity.ipynb
            render cross_domain protocol_sensitivity.ipynb ;;
        benchmark)
            start=$(date +%s)
            python benchmarks/grid_speed.py --quick | tee benchmarks/grid_speed_quick.log
            printf 'benchmark\tbenchmarks/grid_speed.py --quick\t%s\t%s\n' "$(( $(date +%s) - start ))" \
                "$(date -u +%FT%TZ)" >> "$TIMINGS" ;;
        render)
            for folder in MNIST FashionMNIST cross_domain; do
                render "$folder" visualizations.ipynb
            done
            render . example_visualizations.ipynb ;;
        *) echo "unknown step $1; allowed: mnist fmnist cross_mf cross_fm conditions surgical clustering protocols benchmark render" >&2
           exit 2 ;;
    esac
}

if [ $# -eq 0 ]; then
    set -- mnist fmnist cross_mf cross_fm conditions surgical clustering protocols benchmark render
fi
for s in "$@"; do step "$s"; done
