"""Measure age encryption and decryption of a large file: throughput and peak memory.

Four operations run on one file of random bytes (1 GiB by default). Each runs in its
own child process, so that its peak resident set size (``ru_maxrss`` from
``os.wait4``) is its own. pyrage encrypts to an X25519 recipient and decrypts with the
identity. shipline's scrypt implementation encrypts to a passphrase and decrypts with
it, at work factor 18 as age uses. Each decryption's output is compared with the input by
SHA-256. Throughput is MB/s of plaintext (10**6 bytes per second). Run from the
repository root:

    .venv/bin/python bench/crypto.py [--size-mib 1024] [--runs 1] [--folder /tmp]

The goal is constant memory: the peak RSS of each operation on the large file stays
within 16 MiB of its peak RSS on a 1 MiB file. The passphrase operations need about
260 MiB either way, because scrypt with N = 2**18 and r = 8 allocates 256 MiB. The exit
status is 1 when the goal is not met.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: How much more peak resident memory, in MiB, an operation may use on the large file
#: than on a 1 MiB file.
GOAL_MIB = 16
BASELINE_MIB = 1
PASSPHRASE = "benchmark passphrase"
OPERATIONS = ("encrypt-recipient", "decrypt-identity", "encrypt-passphrase",
              "decrypt-passphrase")


def child(operation: str, folder: Path) -> None:
    """Run one operation inside the child process."""
    from pipeline.encryption.files import decrypt_file, encrypt_file, parse_identities

    identity_text = (folder / "identity.txt").read_text()
    if operation == "encrypt-recipient":
        recipient = identity_text.split("# public key: ")[1].split()[0]
        encrypt_file(folder / "plain", folder / "recipient.age", recipients=[recipient])
    elif operation == "decrypt-identity":
        decrypt_file(folder / "recipient.age", folder / "out",
                     identities=parse_identities(identity_text, "identity.txt"))
    elif operation == "encrypt-passphrase":
        encrypt_file(folder / "plain", folder / "passphrase.age", passphrase=PASSPHRASE)
    else:
        decrypt_file(folder / "passphrase.age", folder / "out", passphrase=PASSPHRASE)


def measure(operation: str, folder: Path) -> tuple[float, float]:
    """Return the seconds and the peak RSS in MiB of one operation in a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", operation, "--folder", str(folder)]
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{operation} failed with exit status {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def write_random(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            digest.update(block)
            file.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=1, help="runs of each operation")
    parser.add_argument("--folder", default=None, help="where to put the temporary files")
    parser.add_argument("--child", choices=OPERATIONS, help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child:
        child(options.child, Path(options.folder))
        return 0

    baseline = run_all(BASELINE_MIB, 1, options.folder)
    results = run_all(options.size_mib, options.runs, options.folder)

    print(f"{'operation':<20} {'MB/s (median)':>14} {'peak RSS MiB (max)':>19} "
          f"{f'at {BASELINE_MIB} MiB':>10}")
    met = True
    for operation in OPERATIONS:
        rate, peak = results[operation]
        _, small_peak = baseline[operation]
        met &= peak - small_peak < GOAL_MIB
        print(f"{operation:<20} {rate:>14.1f} {peak:>19.1f} {small_peak:>10.1f}")

    print(f"goal: peak RSS at most {GOAL_MIB} MiB above the {BASELINE_MIB} MiB run: "
          f"{'met' if met else 'NOT met'}")
    return 0 if met else 1


def run_all(size_mib: int, runs: int, parent: str | None) -> dict[str, tuple[float, float]]:
    """Run every operation on a new random file; return MB/s and peak RSS per operation."""
    size = size_mib << 20
    results = {}
    with tempfile.TemporaryDirectory(dir=parent) as name:
        folder = Path(name)
        subprocess.run(["age-keygen", "-o", str(folder / "identity.txt")], check=True,
                       capture_output=True)
        expected = write_random(folder / "plain", size)
        print(f"file: {size_mib} MiB of random bytes in {folder}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        for operation in OPERATIONS:
            measured = [measure(operation, folder) for _ in range(runs)]
            if operation.startswith("decrypt") and sha256(folder / "out") != expected:
                raise SystemExit(f"{operation}: the output differs from the input")
            rate = size / 1e6 / statistics.median(seconds for seconds, _ in measured)
            results[operation] = (rate, max(rss for _, rss in measured))
    return results


if __name__ == "__main__":
    sys.exit(main())
