#!/usr/bin/env bash
# The Slurm recipe of docs/scaling.md, for real, on a one-node Slurm of this machine:
# an array job of `omg batch` shards over a manifest (the demo photo, 48 inputs of
# every task), one task killed while it runs (its results file holds a few lines)
# and requeued, the shards merged by `omg coco`, and the merge compared with one
# unsharded run.
#
#   scripts/slurm-check.sh            (as root: it starts munged, slurmctld, slurmd)
#
# Installs Debian's slurm-wlm and munge if they are missing; builds `omg` (release);
# writes everything under a temporary directory; stops the daemons it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shards=3

if ! command -v slurmctld >/dev/null; then
  echo "installing Debian's slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge >/dev/null
fi
cargo build --release -p omg-cli
omg="${CARGO_TARGET_DIR:-$root/target}/release/omg"

work=$(mktemp -d /tmp/omg-slurm.XXXXXX)
mkdir -p "$work/state" "$work/spool" "$work/results" "$work/data"
cp omg-demo/assets/chelsea.png "$work/data/"
# 48 inputs: the demo manifest's four tasks, twelve times over
for k in $(seq 0 11); do
  sed "s/\"id\": \"\([^\"]*\)\"/\"id\": \"\1-$k\"/" omg-demo/assets/batch_demo.jsonl
done >"$work/data/manifest.jsonl"

started=()
cleanup() {
  for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

if ! pgrep -x munged >/dev/null; then
  [ -s /etc/munge/munge.key ] || mungekey --create --force 2>/dev/null || create-munge-key -f
  mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
  munged --force
  started+=("$(pgrep -x -n munged)")
fi

host=$(hostname -s)
cat >"$work/slurm.conf" <<CONF
ClusterName=omgcheck
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF
export SLURM_CONF="$work/slurm.conf"
slurmctld -D >"$work/slurmctld.out" 2>&1 &
started+=($!)
slurmd -D >"$work/slurmd.out" 2>&1 &
started+=($!)
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && break
  sleep 1
done
sinfo -h -o "%P %T %D" || { cat "$work"/slurmctld.log "$work"/slurmd.log; exit 1; }

# the recipe of docs/scaling.md, with the demo bundle and this run's paths
cat >"$work/array.sh" <<JOB
#!/bin/bash
#SBATCH --job-name=omg-batch
#SBATCH --array=0-$((shards - 1))
#SBATCH --cpus-per-task=1
#SBATCH --requeue
#SBATCH --output=$work/task-%a.log
srun $omg --force-seg 1 --max-new-tokens 6 \\
    batch --manifest $work/data/manifest.jsonl \\
    --shard \${SLURM_ARRAY_TASK_ID}/$shards \\
    --out $work/results/shard-\${SLURM_ARRAY_TASK_ID}.jsonl
JOB
job=$(sbatch --parsable "$work/array.sh")
echo "submitted array job $job"

# kill task 1 once its results file holds a few lines, then requeue it
victim="$work/results/shard-1.jsonl"
for _ in $(seq 600); do
  [ -f "$victim" ] && [ "$(wc -l <"$victim")" -ge 3 ] && break
  sleep 0.1
done
lines_at_kill=$(wc -l <"$victim")
pkill -9 -f "shard 1/$shards" || true
echo "killed task 1 with $lines_at_kill of its lines written"
for _ in $(seq 100); do
  state=$(sacct -n -j "${job}_1" -o State 2>/dev/null | head -1 | tr -d ' ' || true)
  state=${state:-$(scontrol show job "${job}_1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)}
  case "$state" in FAILED | CANCELLED* | NODE_FAIL | COMPLETED) break ;; esac
  sleep 0.2
done
scontrol requeue "${job}_1"
echo "requeued task 1 (it was $state)"
for _ in $(seq 1200); do
  squeue -h -j "$job" | grep -q . || break
  sleep 0.5
done

for i in $(seq 0 $((shards - 1))); do
  echo "shard $i: $(wc -l <"$work/results/shard-$i.jsonl") lines"
done
args=()
for i in $(seq 0 $((shards - 1))); do args+=(--results "$work/results/shard-$i.jsonl"); done
"$omg" coco "${args[@]}" --coco "$work/merged.json"

# one unsharded run of the same manifest
"$omg" --force-seg 1 --max-new-tokens 6 batch --manifest "$work/data/manifest.jsonl" \
  --out "$work/whole.jsonl" 2>/dev/null
"$omg" coco --results "$work/whole.jsonl" --coco "$work/whole.json"

python3 - "$work/merged.json" "$work/whole.json" "$work"/results/shard-*.jsonl <<'PY'
import json, sys
merged, whole = (json.load(open(p)) for p in sys.argv[1:3])
def norm(c):
    files = {i["id"]: i["file_name"] for i in c["images"]}
    anns = sorted(json.dumps({k: v for k, v in a.items() if k not in ("id", "image_id")}
                             | {"file": files[a["image_id"]]}, sort_keys=True)
                  for a in c["annotations"])
    return sorted(files.values()), anns
ids = [json.loads(l)["id"] for p in sys.argv[3:] for l in open(p)]
assert len(ids) == len(set(ids)) == 48, f"{len(ids)} lines, {len(set(ids))} ids"
assert norm(merged) == norm(whole), "the merged shards differ from the unsharded run"
print(f"merged COCO of {len(merged['annotations'])} masks equals the unsharded run; 48 inputs, each once")
PY
echo "slurm check passed"
