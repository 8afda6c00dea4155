"""fairseq's own distributed training, 2 CPU processes over gloo, a few updates.

On CPU fairseq cannot spawn workers itself (it counts GPUs), and torchrun's path divides by the GPU
count, so each rank is started explicitly with a tcp:// rendezvous. ``--ddp-backend legacy_ddp``
because PyTorch DDP's device_ids are GPU-only in fairseq's wrapper.
"""

import subprocess

from _fairseq_cli import FAIRSEQ_TRAIN, REPO, TINY_MODEL, corpus_dir, data_args, json_logs, tail

from echostream_fairseq.server.balancer import free_port


def test_two_process_gloo_training_runs_both_ranks_and_saves(tiny_corpus, tmp_path):
    data = corpus_dir(tiny_corpus)
    port = free_port()
    common = data_args(data, tmp_path) + [
        "--arch", "echostream_mini", *TINY_MODEL, "--multichunk", "--k1", "0", "--n1", "1",
        "--optimizer", "adam", "--lr", "0.001", "--max-tokens", "100000", "--max-update", "3",
        "--required-batch-size-multiple", "1", "--no-epoch-checkpoints", "--no-progress-bar",
        "--log-format", "json", "--log-interval", "1", "--cpu", "--num-workers", "0",
        "--ddp-backend", "legacy_ddp", "--distributed-backend", "gloo",
        "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-world-size", "2",
        "--distributed-no-spawn",
    ]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen([FAIRSEQ_TRAIN, *common, "--distributed-rank", str(rank)], cwd=REPO,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for rank, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"rank {rank}:\n{tail(output)}"
        assert f"distributed init (rank {rank})" in output
    assert "training on 2 devices" in outputs[0], tail(outputs[0])
    logs = json_logs(outputs[0], "train_inner")
    assert [log["num_updates"] for log in logs] == [1.0, 2.0, 3.0]
    assert (tmp_path / "checkpoint_last.pt").is_file()
