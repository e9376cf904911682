#!/usr/bin/env bash
# Re-create the results shipped in the repository (cpu profile, real MNIST/FashionMNIST).
#
#   TL_STUDY_DATA=/path/to/data tools/reproduce_results.sh [step ...]
#
# Steps (default: all, in this order): see ALL_STEPS at the bottom. A grid trains on one single-threaded worker
# per core by default; to run two lists of steps side by side instead, give each OMP_NUM_THREADS=1
# TL_STUDY_WORKERS=1 (one grid per core; two processes on one results folder share the runs out by claims).
# `render` re-executes the visualizations notebooks and example_visualizations.ipynb from the results (no
# training) and puts them back in place without papermill's injected-parameters cell (it would override the
# notebook's defaults in JupyterLab), so they are committed with their outputs.
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
        # every grid runs under the cpu profile's fair default protocol (realistic, tuned lr; README
        # "Protocols") at its fractions 0.001/0.01/0.1 with 16/16/8 repeats unless a step says otherwise
        mnist)      run mnist MNIST truncation_experiment.ipynb ;;  # baseline + FR + FT on the same subsets
        # the headline settings also at 50 % and 100 % (where transfer may stop helping): 8 repeats each
        mnist_large) run mnist_large MNIST empirical_experiment.ipynb -y "percentages: [0.5, 1.0]" \
                        -y "repeats: [8, 8]" ;;
        fmnist)     run fmnist FashionMNIST empirical_experiment.ipynb -p class_split regular ;;
        cross_mf)   run cross_mf cross_domain empirical_experiment.ipynb -p source_dataset MNIST \
                        -p target_dataset FashionMNIST ;;
        cross_fm)   run cross_fm cross_domain empirical_experiment.ipynb -p source_dataset FashionMNIST \
                        -p target_dataset MNIST ;;
        cross_fm_large) run cross_fm_large cross_domain empirical_experiment.ipynb -p source_dataset FashionMNIST \
                        -p target_dataset MNIST -y "percentages: [0.5, 1.0]" -y "repeats: [8, 8]" ;;
        # the original study's 6 x 64 network under the fair default protocol (issue 18): baseline + FR at cuts
        # 1-6, 0.1 % and 1 % with 16 repeats, batch 64 (pretraining too); hours on 2 cores
        paper_fair) TL_STUDY_PROFILE=paper run paper_fair MNIST empirical_experiment.ipynb -p protocol realistic \
                        -y "lr_grid: [0.0003, 0.001, 0.003]" -y "percentages: [0.001, 0.01]" -y "repeats: [16, 16]" \
                        -p results_dir results/paper_fair -y 'overrides: {"batch_size": 64}' ;;
        # the weight controls and block-shuffled images of issue 19 on both headline settings; the notebooks are
        # then committed with their outputs (cross_domain's runs FashionMNIST -> MNIST by default)
        what_transfers) run what_transfers MNIST what_transfers.ipynb
                        run what_transfers_fm cross_domain what_transfers.ipynb
                        render MNIST what_transfers.ipynb
                        render cross_domain what_transfers.ipynb ;;
        # AnB/AnB+/BnB/BnB+, surgical, strategies, TTA: ~16 arms that cannot use the prefix cache
        # (both committed with their outputs, like the visualizations)
        conditions) run conditions MNIST transfer_conditions.ipynb
                    render MNIST transfer_conditions.ipynb ;;
        surgical)   run surgical cross_domain surgical_finetuning.ipynb
                    render cross_domain surgical_finetuning.ipynb ;;
        clustering) run clustering MNIST clustering_experiment.ipynb ;;
        # the same grid under the original, steps, realistic, fixed-budget and tuned-lr protocols (README,
        # "Protocols"): MNIST 0-4 -> 5-9 and FashionMNIST -> MNIST, 16/16/8 repeats at 0.1/1/10 %; the
        # notebooks are then committed with their outputs, like the visualizations
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
        *) echo "unknown step $1; allowed: $ALL_STEPS" >&2
           exit 2 ;;
    esac
}

ALL_STEPS="mnist mnist_large fmnist cross_mf cross_fm cross_fm_large what_transfers conditions surgical clustering paper_fair protocols benchmark render"
if [ $# -eq 0 ]; then
    # shellcheck disable=SC2086
    set -- $ALL_STEPS
fi
for s in "$@"; do step "$s"; done
