#!/bin/bash
# perf_analyzer sweeps of the deployed Triton, through the Service and against one pod.
# Writes the results layout that `python -m lab perf report DIR` reads (one folder per
# target: raw/triton-<level>.csv plus the composing models' files, and run.json), then prints
# the CSVs as a base64 tarball between two marker lines so that `kubectl logs` can bring them
# home after the pod is gone (see README.md).
set -uo pipefail

: "${PROTOCOL:=http}" "${CONCURRENCY:=1 2 4 8 16 32}" "${REQUEST_RATES:=}"
: "${DISTRIBUTIONS:=constant poisson}" "${MEASUREMENT_INTERVAL_MS:=5000}"
: "${STABILITY_PERCENTAGE:=30}" "${INPUT_DATA:=/perf/input_data.json}" "${RESULTS_DIR:=/results}"
: "${TRITON_SERVICE:=triton}" "${TRITON_DIRECT_SERVICE:=triton-perf-direct}" "${COLLECT_METRICS:=0}"

case "${PROTOCOL}" in
  http) port=8000 ;;
  grpc) port=8001 ;;
  *) echo "PROTOCOL must be http or grpc, got '${PROTOCOL}'" >&2; exit 2 ;;
esac

failures=()

# measure TARGET_DIR HOST NAME LEVEL_FLAGS...: one perf_analyzer run at one load level.
measure() {
  local dir=$1 host=$2 name=$3
  shift 3
  local metrics=()
  if [ "${COLLECT_METRICS}" = 1 ]; then
    metrics=(--collect-metrics --metrics-url "${host}:8002/metrics")
  fi
  echo "== ${dir##*/}: ${name}"
  # -f takes a bare name: perf_analyzer prefixes the composing models' files to it.
  if ! (cd "${dir}/raw" && perf_analyzer -m text_embedding -u "${host}:${port}" -i "${PROTOCOL}" \
      --input-data "${INPUT_DATA}" --measurement-interval "${MEASUREMENT_INTERVAL_MS}" \
      --stability-percentage "${STABILITY_PERCENTAGE}" --max-trials 6 \
      --verbose-csv "${metrics[@]}" -f "${name}.csv" "$@" > "${name}.log" 2>&1); then
    tail -n 5 "${dir}/raw/${name}.log"
    failures+=("${dir##*/} ${name}")
  fi
}

# sweep TARGET HOST DESCRIPTION
sweep() {
  local dir="${RESULTS_DIR}/$1" host=$2
  mkdir -p "${dir}/raw"
  local c rate distribution
  for c in ${CONCURRENCY}; do
    measure "${dir}" "${host}" "triton-concurrency-${c}" --concurrency-range "${c}"
  done
  for rate in ${REQUEST_RATES}; do
    for distribution in ${DISTRIBUTIONS}; do
      measure "${dir}" "${host}" "triton-rate-${distribution}-${rate}" \
        --request-rate-range "${rate}" --request-distribution "${distribution}"
    done
  done
  cat > "${dir}/run.json" <<JSON
{
  "started": "${started}",
  "machine": "Kubernetes Job $(hostname), $(nproc) CPUs for perf_analyzer",
  "triton_url": "$3 (${host}:${port})",
  "protocol": "${PROTOCOL}",
  "perf_analyzer": "measurement window ${MEASUREMENT_INTERVAL_MS} ms, stability ${STABILITY_PERCENTAGE}%, up to 6 windows per level",
  "dataset": "${INPUT_DATA}",
  "notes": ["No baselines: they are measured on one machine by make perf."]
}
JSON
}

started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
sweep service "${TRITON_SERVICE}" "the Service"
pod_ip=$(getent hosts "${TRITON_DIRECT_SERVICE}" | awk 'NR == 1 {print $1}')
if [ -n "${pod_ip}" ]; then
  sweep pod "${pod_ip}" "one pod, directly"
else
  echo "no pod address behind ${TRITON_DIRECT_SERVICE}; skipping the direct sweep" >&2
  failures+=("pod: no address")
fi

echo "----- BEGIN PERF RESULTS (base64 tar.gz) -----"
tar -C "${RESULTS_DIR}" -czf - --exclude='*.log' . | base64
echo "----- END PERF RESULTS -----"

if [ "${#failures[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}" >&2
  exit 1
fi
