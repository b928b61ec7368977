#!/usr/bin/env bash
# Example SLURM job: one classifier run on several nodes through torchrun + DDP.
#
#   DATA_ROOT=/data OUT=runs sbatch scripts/slurm_multinode_example.sh [classifiers_oe.train options]
#   (MODE=oe_tune|oe_scratch, DATASET=cifar100 to change the run; default: cifar10 baseline)
#
# The whole paper as a SLURM job graph: scripts/reproduce.sh --slurm writes and submits one job like this per run
# (resources in scripts/reproduce_resources.toml); both are tested under a real SLURM
# (tests/test_reproduce_slurm.py, on the CPU: DEVICE=cpu GPUS_PER_NODE=1 NNODES=2 with 2 tasks on one node).
#
# One torchrun per node (srun), GPUS_PER_NODE processes each; the c10d rendezvous runs on the first node.
# --batch-size/--oe-batch-size stay the *global* batches (128/256, as in the reference), split over all
# GPUs; --sync-bn makes BatchNorm see the whole global batch, as on the reference's single GPU.
# Preemption and time limits: on SIGTERM (a preemption, or --signal below 120 s before the time limit)
# every process finishes its step, rank 0 writes a checkpoint and the run exits with code 75.  A preempted
# job is requeued (--requeue, where the cluster requeues on preemption); after a time limit, submit the
# same job again.  Either way the same command resumes from the checkpoint in the run folder.
#SBATCH --job-name=oe-classifier
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=12:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail
: "${DATA_ROOT:?set DATA_ROOT to the folder holding the datasets}"
OUT="${OUT:-runs}"
MODE="${MODE:-baseline}"
DATASET="${DATASET:-cifar10}"
GPUS_PER_NODE="${GPUS_PER_NODE:-4}"   # processes per torchrun (one per GPU)
NNODES="${NNODES:-$SLURM_JOB_NUM_NODES}"  # torchrun launchers in the rendezvous (one srun task each)
DEVICE="${DEVICE:-cuda}"               # cpu: gloo instead of NCCL, no SyncBatchNorm
RDZV_PORT="${RDZV_PORT:-29500}"
PY="${OE_PYTHON:-python}"
HEAD_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"

ARGS=(--mode "$MODE" --dataset "$DATASET" --data-root "$DATA_ROOT" --out "$OUT/${DATASET}_wrn_${MODE}"
      --device "$DEVICE" --num-workers 8)
if [[ "$DEVICE" == cuda ]]; then
  ARGS+=(--sync-bn)
fi
if [[ "$MODE" == oe_tune ]]; then
  ARGS+=(--init "$OUT/${DATASET}_wrn_baseline")
fi

# "exec" lets the batch shell's SIGTERM reach srun, which forwards it to every torchrun and its workers.
exec srun --kill-on-bad-exit=1 "$PY" -m torch.distributed.run \
  --nnodes "$NNODES" --nproc_per_node "$GPUS_PER_NODE" \
  --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$HEAD_NODE:$RDZV_PORT" \
  -m classifiers_oe.train "${ARGS[@]}" "$@"
