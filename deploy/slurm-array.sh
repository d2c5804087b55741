#!/bin/bash
# N tuning workers on one PostgreSQL study, as a Slurm job array (one worker per array task).
# From the repository root, on a shared file system, with keras-smelu installed:
#   export KERAS_SMELU_STORAGE='postgresql+psycopg2://user@dbhost:5432/keras_smelu'
#   sbatch deploy/slurm-array.sh                  # 3 workers
#   sbatch --array=0-7 deploy/slurm-array.sh      # 8 workers
# sbatch passes the submitting shell's environment on, KERAS_SMELU_STORAGE included (a
# password is better kept in ~/.pgpass than in the URL).
#SBATCH --job-name=keras-smelu-tune
#SBATCH --array=0-2
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=02:00:00
#SBATCH --output=slurm-keras-smelu-%A_%a.out
set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"
if [ -n "${KERAS_SMELU_VENV:-}" ]; then
    # shellcheck disable=SC1091  # the virtualenv is the user's, found at run time
    . "$KERAS_SMELU_VENV/bin/activate"
fi
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
export KERAS_SMELU_JOB="${KERAS_SMELU_JOB:-deploy/job.toml}"
export KERAS_SMELU_OUTPUT="${KERAS_SMELU_OUTPUT:-keras-smelu-runs/workers-demo}"
# WORKER_ID defaults to SLURM_ARRAY_TASK_ID: one report folder per array task.
exec deploy/worker.sh
