#!/usr/bin/env python3
"""The DICOMweb benchmark (not a test): STOW-RS intake to results in a real Orthanc, beside `/predict` on the same
files, in one run. Prints a markdown table (BENCHMARKS.md "DICOMweb").

    make bench-pacs            # or: python bench/python/pacs_bench.py --server … --models … --ort-dylib …

Orthanc (Debian) runs as in tests/python/check_pacs.py; cxr-serve runs with `--default-model gray` and pushes to it.
Every image is a copy of tests/data/dicom/cxr_explicit_le.dcm with UIDs of its own, so no result is a duplicate.

- Latency at concurrency 1: from the start of a one-instance STOW-RS request to cxr-serve until Orthanc lists the
  image's SR and Secondary Capture (polled every 10 ms): p50 / p95 over `--latency-images` images, after warm-up.
  Beside it, `/predict?model=gray` p50 / p95 on the same files.
- Throughput: `--clients` closed-loop clients for `--seconds` each, first sending one-instance STOW-RS requests
  (answered once the results are queued), then `/predict?model=gray` with the same files; images/s of each and the
  ratio intake / predict (goal ≥ 0.9). Intake does more per image than `/predict` (it also reads the header, fetches
  the class activation maps, draws the overlays and writes two DICOM objects), and its pushes to Orthanc share the
  CPUs.
"""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))
from pacs_harness import copy_with_new_uids, fail, multipart, pacs, server_arguments  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "data", "dicom", "cxr_explicit_le.dcm")


def percentile(values, q):
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stow(server, data):
    body, content_type = multipart([data])
    status, _, answer = server.post("/dicomweb/studies", body, content_type)
    if status != 200:
        fail(f"STOW-RS to cxr-serve: HTTP {status}: {answer[:300]!r}")


def predict(server, data):
    status, _, answer = server.post("/predict?model=gray", data, "application/dicom")
    if status != 200:
        fail(f"/predict: HTTP {status}: {answer[:300]!r}")


def results_in_orthanc(orthanc, study):
    # The source itself never goes to Orthanc here: the study holds only the results (an SR and a Secondary Capture).
    return len(orthanc.instances_of_study(study)) >= 2


def latency(orthanc, server, images):
    intake, direct = [], []
    for data, ds in images:
        started = time.perf_counter()
        stow(server, data)
        while not results_in_orthanc(orthanc, ds.StudyInstanceUID):
            if time.perf_counter() - started > 60:
                fail("results did not reach Orthanc within 60 s")
            time.sleep(0.01)
        intake.append(time.perf_counter() - started)
        started = time.perf_counter()
        predict(server, data)
        direct.append(time.perf_counter() - started)
    return intake, direct


def saturate(send, images, clients, seconds):
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(i):
        k = i
        while time.perf_counter() < stop:
            send(images[k % len(images)][0])
            done[i] += 1
            k += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def main():
    parser = server_arguments("The DICOMweb benchmark (see the module docs).")
    parser.add_argument("--latency-images", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with pacs(args, default_model="gray") as (work, orthanc, server):
        warmup = [copy_with_new_uids(FIXTURE) for _ in range(3)]
        latency(orthanc, server, warmup)
        images = [copy_with_new_uids(FIXTURE) for _ in range(args.latency_images)]
        intake, direct = latency(orthanc, server, images)
        pool = [copy_with_new_uids(FIXTURE) for _ in range(64)]
        intake_rate = saturate(lambda data: stow(server, data), pool, args.clients, args.seconds)
        # Let the pushes of the intake run finish before /predict is measured on the same CPUs.
        deadline = time.time() + 120
        while time.time() < deadline:
            metrics = server.get("/metrics")[1].decode()
            depth = [l for l in metrics.splitlines() if l.startswith("cxr_dicomweb_queue_depth ")]
            if depth and float(depth[0].split()[1]) == 0:
                break
            time.sleep(0.5)
        predict_rate = saturate(lambda data: predict(server, data), pool, args.clients, args.seconds)
        ms = lambda s: f"{1000 * s:.0f}"  # noqa: E731
        print(f"DICOMweb benchmark: {os.cpu_count()} CPUs, gray model, {os.path.basename(FIXTURE)} copies, "
              f"{args.latency_images} images at c=1, {args.clients} clients × {args.seconds:g} s")
        print()
        print("| measure | STOW-RS intake → results in Orthanc | /predict (JSON) | ratio |")
        print("|---|---|---|---|")
        print(f"| c=1 p50 (ms) | {ms(statistics.median(intake))} | {ms(statistics.median(direct))} | "
              f"{statistics.median(intake) / statistics.median(direct):.2f} |")
        print(f"| c=1 p95 (ms) | {ms(percentile(intake, 0.95))} | {ms(percentile(direct, 0.95))} | "
              f"{percentile(intake, 0.95) / percentile(direct, 0.95):.2f} |")
        print(f"| saturated images/s ({args.clients} clients) | {intake_rate:.2f} (intake answered) | "
              f"{predict_rate:.2f} | {intake_rate / predict_rate:.2f} (goal ≥ 0.9) |")

if __name__ == "__main__":
    main()
