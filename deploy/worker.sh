#!/bin/sh
# One tuning worker. Every worker runs this same command on the same job file; the job's
# `storage = "env:KERAS_SMELU_STORAGE"` makes them all join one study in that storage, and each
# stops once the study holds the job's trials. Run as many as you like, on any machines.
#
#   KERAS_SMELU_STORAGE  the study's storage URL, e.g. postgresql+psycopg2://user:pw@host/db
#                        (read by the job file; `keras-smelu` names it when it is unset)
#   KERAS_SMELU_JOB      the job file (default /etc/keras-smelu/job.toml)
#   KERAS_SMELU_OUTPUT   where this worker writes its report (default /runs)
#   WORKER_ID            names this worker's report folder; default: the Kubernetes completion
#                        index, the Slurm array task id, else the host name
set -eu

job="${KERAS_SMELU_JOB:-/etc/keras-smelu/job.toml}"
worker="${WORKER_ID:-${JOB_COMPLETION_INDEX:-${SLURM_ARRAY_TASK_ID:-$(hostname)}}}"

exec keras-smelu tune "$job" --output "${KERAS_SMELU_OUTPUT:-/runs}/worker-$worker"
