"""What the Ray executor costs beyond the work: a local cluster's start-up, and the overhead per task, measured
with jobs that do nothing, through ``bench.stages.ray_executor.run_jobs`` (the path ``bench run --executor ray``
takes): a batch of independent jobs, and a chain where each job needs the previous one (as PPO needs its reward
model).

    python benchmarks/ray_bench.py --cpus 2 --jobs 40
"""

from __future__ import annotations

import argparse
import json
import logging
import time


def nothing() -> None:
    """A job without work."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=40)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import ray

    from bench.stages.jobs import Job
    from bench.stages.ray_executor import connect, run_jobs

    t0 = time.perf_counter()
    connect(num_cpus=args.cpus)
    start = time.perf_counter() - t0
    run_jobs([Job(f"warm/{i}", nothing, cpus=1) for i in range(args.cpus)], "warm")  # workers started once
    t0 = time.perf_counter()
    run_jobs([Job(f"batch/{i}", nothing, cpus=1) for i in range(args.jobs)], "batch")
    batch = time.perf_counter() - t0
    chain = [Job(f"chain/{i}", nothing, cpus=1, needs=(f"chain/{i - 1}",) if i else ()) for i in range(args.jobs // 4)]
    t0 = time.perf_counter()
    run_jobs(chain, "chain")
    dependent = time.perf_counter() - t0
    ray.shutdown()
    print(json.dumps({"cpus": args.cpus, "cluster_start_s": round(start, 2),
                      "independent_jobs": args.jobs, "per_job_ms_independent": round(1000 * batch / args.jobs, 1),
                      "chained_jobs": len(chain), "per_job_ms_chained": round(1000 * dependent / len(chain), 1)}, indent=1))


if __name__ == "__main__":
    main()
