#!/usr/bin/env bash
# On the device: Nsight Compute over one launch of deconv_wsgemm for each "problem:config" argument
# (problem: a name in bench/problems.jsonl or problems_16bit.jsonl), tf32. Why a kernel is as fast
# as it is, in the counters' words: speed of light, memory and compute workloads, warp stalls,
# scheduler, occupancy. Results: $OUT/profile/<problem>.txt (ncu's details page), .hotspots.txt
# (the SASS instructions holding most warp-stall samples, with their stall reasons:
# bench/device/sass_hotspots.py), .sass.csv and .ncu-rep.
set -u
# shellcheck source=bench/device/env.sh
source "$(dirname "$0")/env.sh"
out=${OUT:-/tmp}/profile
mkdir -p "$out"
sections="--section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis
  --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats
  --section SourceCounters"
for pair in "$@"; do
  name=${pair%%:*} config=${pair#*:}
  bash bench/device/problem_file.sh "$name" "$out/$name.json" || continue
  # One launch after the verifying one: the timed kernel, caches as the benchmark leaves them.
  # shellcheck disable=SC2086
  timeout "${PROFILE_TIMEOUT:-120}" ncu --clock-control none --kernel-name deconv_wsgemm \
    --launch-skip 1 --launch-count 1 $sections -f -o "$out/$name" \
    .carry/deconvtune run --problem "$out/$name.json" --precision tf32 --config "$config" \
    --reps 2 > "$out/$name.run.txt" 2>&1
  echo "== $name $config: ncu rc=$?"
  ncu --import "$out/$name.ncu-rep" --page details > "$out/$name.txt" 2>&1
  # Which instructions the warps wait at (PC sampling), e.g. the producer's loads or its stores.
  ncu --import "$out/$name.ncu-rep" --page source --csv --print-source sass \
    > "$out/$name.sass.csv" 2>&1
  python3 bench/device/sass_hotspots.py "$out/$name.sass.csv" --top 25 > "$out/$name.hotspots.txt" 2>&1
  tail -1 "$out/$name.hotspots.txt"
  grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|L1/TEX Hit|L2 Hit|DRAM Throughput|Executed Ipc A|Issue Slots Busy|No Eligible|Registers Per|Achieved Occupancy|Stall|Warp Cycles Per Issued" "$out/$name.txt" | head -24
done
