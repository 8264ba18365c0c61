"""Time rolling deploys on the command target against their critical path, beside the
same rolling update done by ansible-playbook.

Every instance's deploy command is ``sleep``, so the shortest possible rolling update
takes batches x sleep time: the critical path. Whatever the update takes beyond that is
the tool's own overhead. Goals for shipline:

(a) 300 instances, batches of 10, ``sleep 0.05``: at most 1.25x the critical path.
(b) 1,000 instances, batches of 50, ``sleep 0.2``: at most 1.15x the critical path.

shipline runs as ``python -m pipeline run`` in a subprocess, and its rolling time is the
deploy step's testcase time in the JUnit report. Ansible runs bench/ansible/rolling-raw.yml
and rolling-command.yml over an inventory of N hosts with ``ansible_connection=local``,
``serial`` and ``forks`` equal to the batch size, and its rolling time runs from the first
play start to the end of the playbook (recorded by bench/ansible/callback_plugins). The
process time of either tool is the wall time of the whole subprocess, start-up included.
A third row, "floor (threads)", starts the same ``sleep`` processes batch by batch from a
thread pool inside this script: what starting processes costs on this machine, before
any tool adds its own work.

Memory is reported twice. "max RSS" is ru_maxrss from wait4() of the tool's process: the
largest resident set of any single process of the run. "tree PSS" is the peak of the
summed proportional set size of the tool and all its descendants, sampled from /proc every
0.2 s, which counts Ansible's forked workers without counting their shared pages twice.

ansible-core comes from PyPI and is installed into bench/.venv-ansible on first use. If
it cannot be installed, Ansible is reported as not measured. Run from the repository
root; the exit status is 1 when a shipline run fails or misses its goal:

    .venv/bin/python bench/rolling.py [--quick | --case b] [--runs 3] [--ansible-runs 1]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ANSIBLE_VENV = BENCH / ".venv-ansible"
ANSIBLE_FOLDER = BENCH / "ansible"
ANSIBLE_MODULES = ("raw", "command")

#: Seconds between two samples of the process tree's memory.
SAMPLE_INTERVAL = 0.2

#: Seconds that installing ansible-core may take.
INSTALL_TIMEOUT = 900.0


@dataclass(frozen=True)
class Case:
    """One rolling update: ``instances`` hosts, ``batch`` at a time, each deploy
    sleeping ``seconds``. ``goal`` is shipline's limit as a multiple of the critical path."""

    label: str
    instances: int
    batch: int
    seconds: float
    goal: float

    @property
    def batches(self) -> int:
        return math.ceil(self.instances / self.batch)

    @property
    def critical_path(self) -> float:
        """Seconds of the rolling update with zero overhead: batches x sleep time."""
        return self.batches * self.seconds

    def describe(self) -> str:
        return (f"({self.label}) {self.instances} instances, batches of {self.batch}, "
                f"sleep {self.seconds} s: {self.batches} batches, critical path "
                f"{self.critical_path:.2f} s")


CASES = (
    Case("a", instances=300, batch=10, seconds=0.05, goal=1.25),
    Case("b", instances=1000, batch=50, seconds=0.2, goal=1.15),
)


@dataclass(frozen=True)
class ChildRun:
    """The outcome of one subprocess: exit code (None when it was killed at the
    timeout), wall seconds, and peak memory in KiB (``tree_pss_kib`` is None without
    /proc)."""

    exit_code: int | None
    wall: float
    max_rss_kib: int
    tree_pss_kib: int | None


@dataclass(frozen=True)
class Sample:
    """One timed run: the rolling update's seconds and the subprocess that did it
    (None for the floor, which runs inside this process)."""

    rolling: float
    child: ChildRun | None


@dataclass
class Result:
    """Every run of one tool on one case, or why the tool was not measured."""

    tool: str
    case: Case
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    def rolling(self) -> list[float]:
        return [sample.rolling for sample in self.samples]

    def ratio(self) -> float:
        """Median rolling time as a multiple of the critical path."""
        return statistics.median(self.rolling()) / self.case.critical_path

    def goal_met(self) -> bool:
        return self.error is None and self.ratio() <= self.case.goal

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool, "case": self.case.label, "instances": self.case.instances,
            "batch": self.case.batch, "seconds": self.case.seconds,
            "critical_path": self.case.critical_path, "error": self.error,
            "runs": [{"rolling": sample.rolling, "process": _field(sample, "wall"),
                      "max_rss_kib": _field(sample, "max_rss_kib"),
                      "tree_pss_kib": _field(sample, "tree_pss_kib")}
                     for sample in self.samples],
        }


def _field(sample: Sample, name: str) -> Any:
    return None if sample.child is None else getattr(sample.child, name)


class RunFailed(Exception):
    """A tool's run did not complete the rolling update. The message gives the reason."""


class AnsibleUnavailable(Exception):
    """ansible-core is missing from bench/.venv-ansible and could not be installed."""


@dataclass(frozen=True)
class Ansible:
    """An installed ansible-core: its ansible-playbook, its Python, its version."""

    playbook: Path
    python: Path
    version: str


# -- measuring a subprocess --------------------------------------------------------------


class TreeSampler:
    """Samples the summed PSS (KiB) of a process and its descendants in a thread and
    keeps the peak. A process that ends between two reads counts as 0."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    @staticmethod
    def available() -> bool:
        return Path("/proc/self/smaps_rollup").exists()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.peak_kib = max(self.peak_kib, tree_pss_kib(self.root))


def tree_pss_kib(root: int) -> int:
    """Return the summed PSS in KiB of ``root`` and every process descended from it.

    A child created by vfork() shares its parent's memory until it calls exec(), and
    its smaps_rollup shows all of that memory again, so such a child is left out.
    """
    children: dict[int, list[int]] = {}
    for pid, parent in _parent_pids().items():
        children.setdefault(parent, []).append(pid)

    total = _pss_kib(root)
    pending = [(child, root) for child in children.get(root, ())]
    while pending:
        pid, parent = pending.pop()
        if not _shares_memory(pid, parent):
            total += _pss_kib(pid)
        pending.extend((child, pid) for child in children.get(pid, ()))
    return total


#: Numbers of the Linux kcmp() system call by machine. On other machines a vfork()
#: child is counted with its parent's memory.
KCMP_SYSCALLS = {"x86_64": 312, "aarch64": 272}
KCMP_VM = 1


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _shares_memory(pid: int, parent: int) -> bool:
    """Tell whether ``pid`` and ``parent`` use one address space (kcmp() KCMP_VM)."""
    number = KCMP_SYSCALLS.get(platform.machine())
    if number is None:
        return False
    return int(_libc().syscall(number, pid, parent, KCMP_VM, 0, 0)) == 0


def _parent_pids() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        # The command name in brackets may contain spaces, so split after the last
        # bracket. The state comes next, then the parent pid.
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8")
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run_child(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path,
              timeout: float) -> ChildRun:
    """Run ``argv`` with stdout and stderr in ``log`` and measure it.

    The child starts its own process group, which is killed with SIGKILL after
    ``timeout`` seconds. Peak RSS comes from wait4(), so each run is measured on its
    own rather than as the maximum over every child this script has waited for.
    """
    sampler: TreeSampler | None = None
    killed = threading.Event()
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        if TreeSampler.available():
            sampler = TreeSampler(process.pid)
            sampler.start()
        timer = threading.Timer(timeout, _kill_group, (process.pid, killed))
        timer.start()

        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)

    peak = sampler.stop() if sampler is not None else None
    exit_code = None if killed.is_set() else process.returncode
    # ru_maxrss is in KiB on Linux but in bytes on macOS.
    max_rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return ChildRun(exit_code, wall, max_rss_kib=max_rss, tree_pss_kib=peak)


def _kill_group(pid: int, killed: threading.Event) -> None:
    killed.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def check_child(child: ChildRun, log: Path, timeout: float) -> None:
    """Raise RunFailed if ``child`` timed out or exited with a code other than 0."""
    if child.exit_code is None:
        raise RunFailed(f"killed after the {timeout:.0f} s timeout: {_tail(log)}")
    if child.exit_code != 0:
        raise RunFailed(f"exit code {child.exit_code}: {_tail(log)}")


def _tail(log: Path, lines: int = 3) -> str:
    """Return the last ``lines`` lines of ``log`` joined on one line, because the
    temporary folder that contains it is removed when the benchmark ends."""
    text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def python_env(workdir: Path) -> dict[str, str]:
    """Return this process's environment with bytecode caching on, in ``workdir``.

    An installed package has its bytecode compiled, but PYTHONDONTWRITEBYTECODE (set in
    some CI and container images) would make every run compile the project from source.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env["NO_COLOR"] = "1"
    return env


# -- shipline ----------------------------------------------------------------------------


def pipeline_text(case: Case) -> str:
    """Return the pipeline file of ``case``: one rolling deploy, health check off."""
    instances = "\n".join(f"        - host-{number:04d}" for number in range(case.instances))
    return f"""\
version: 1
name: bench-rolling
environments:
  fleet:
    target:
      type: command
      deploy: sleep {case.seconds}
      instances:
{instances}
stages:
  - name: roll
    environment: fleet
    steps:
      - deploy:
          version: "2.0.0"
          strategy: rolling
          batch: {case.batch}
          health: false
"""


def deploy_seconds(report: Path) -> float:
    """Return the time of the deploy testcase in a JUnit report. Raise RunFailed if the
    testcase is missing or did not pass."""
    root = ElementTree.parse(report).getroot()
    for testcase in root.iter("testcase"):
        if not testcase.get("name", "").startswith("deploy"):
            continue
        # An Element without children is false, so test each find() against None.
        problem = testcase.find("failure")
        if problem is None:
            problem = testcase.find("error")
        if problem is not None:
            raise RunFailed(f"the deploy step failed: {problem.get('message')}")
        return float(testcase.get("time", "nan"))
    raise RunFailed(f"no deploy testcase in {report}")


def measure_shipline(case: Case, workdir: Path, runs: int, timeout: float) -> Result:
    """Run the rolling update of ``case`` with shipline ``runs`` times."""
    result = Result("shipline", case)
    folder = workdir / f"shipline-{case.label}"
    folder.mkdir()
    pipeline = folder / "shipline.yml"
    pipeline.write_text(pipeline_text(case), encoding="utf-8")
    env = python_env(workdir)

    # Untimed: fills the bytecode cache and checks the file.
    command = [sys.executable, "-m", "pipeline"]
    warm_up = subprocess.run([*command, "validate", "-q", str(pipeline)], cwd=folder, env=env,
                             capture_output=True, text=True, timeout=timeout)
    if warm_up.returncode != 0:
        result.error = f"shipline validate failed: {(warm_up.stdout + warm_up.stderr).strip()}"
        return result

    for run in range(runs):
        report = folder / f"report-{run}.xml"
        log = folder / f"output-{run}.txt"
        child = run_child([*command, "run", "--junitxml", str(report), str(pipeline)],
                          cwd=folder, env=env, log=log, timeout=timeout)
        try:
            check_child(child, log, timeout)
            result.samples.append(Sample(deploy_seconds(report), child))
        except RunFailed as exc:
            result.error = str(exc)
            return result
    return result


# -- the floor: threads starting sleep directly --------------------------------------------


def measure_floor(case: Case, runs: int) -> Result:
    """Run the batches of ``case`` as bare ``sleep`` subprocesses from a thread pool in this
    process, ``runs`` times: the cost of starting processes from Python threads on this
    machine, which every Python tool pays, with no start-up, pipeline or reporting."""
    result = Result("floor (threads)", case)
    argv = ["sleep", str(case.seconds)]

    def deploy(_instance: int) -> None:
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=True,
                       start_new_session=True)

    with ThreadPoolExecutor(max_workers=case.batch) as pool:
        for _ in range(runs):
            started = time.perf_counter()
            for first in range(0, case.instances, case.batch):
                batch = range(first, min(first + case.batch, case.instances))
                list(pool.map(deploy, batch))
            elapsed = time.perf_counter() - started
            result.samples.append(Sample(elapsed, None))
    return result


# -- ansible -----------------------------------------------------------------------------


def find_or_install_ansible(venv: Path) -> Ansible:
    """Return the ansible-core of ``venv``. When it is missing, create the venv with this
    interpreter and install ansible-core from PyPI, and raise AnsibleUnavailable if that
    fails."""
    python = venv / "bin" / "python"
    playbook = venv / "bin" / "ansible-playbook"
    if not playbook.exists():
        print(f"installing ansible-core into {venv} ...", flush=True)
        _install(venv, python)

    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('ansible-core'))"],
        capture_output=True, text=True, check=False,
    )
    if version.returncode != 0 or not playbook.exists():
        raise AnsibleUnavailable(f"ansible-core is not usable in {venv}: {version.stderr.strip()}")
    return Ansible(playbook, python, version.stdout.strip())


def _install(venv: Path, python: Path) -> None:
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "ansible-core"]]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnsibleUnavailable(f"{' '.join(argv)} failed: {exc}") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            raise AnsibleUnavailable(f"{' '.join(argv)} exited with {done.returncode}: "
                                     + " | ".join(output[-3:]))


def inventory_text(case: Case, python: Path) -> str:
    """Return an INI inventory of ``case.instances`` hosts, all on the local connection.

    The interpreter is set so that Ansible does not run its interpreter discovery on
    every host, which a real fleet would also configure once.
    """
    hosts = "\n".join(f"host-{number:04d}" for number in range(case.instances))
    return (f"[fleet]\n{hosts}\n\n[fleet:vars]\nansible_connection=local\n"
            f"ansible_python_interpreter={python}\n")


def ansible_env(workdir: Path, folder: Path) -> dict[str, str]:
    """Return the environment of ansible-playbook: our timing callback enabled, and
    every Ansible folder inside ``folder`` rather than in ~/.ansible."""
    env = python_env(workdir)
    env.update({
        "ANSIBLE_HOME": str(folder / "home"),
        "ANSIBLE_LOCAL_TEMP": str(folder / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(folder / "remote-tmp"),
        "ANSIBLE_CALLBACK_PLUGINS": str(ANSIBLE_FOLDER / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
    })
    return env


def count_changed_hosts(log: Path) -> int:
    """Count the hosts of the play recap with one task ok and changed, none failed."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return len(re.findall(r"^\S+\s+: ok=1\s+changed=1\s+unreachable=0\s+failed=0",
                          text, re.MULTILINE))


def measure_ansible(case: Case, module: str, ansible: Ansible, workdir: Path, runs: int,
                    timeout: float) -> Result:
    """Run the rolling update of ``case`` with ansible-playbook and ``module``, ``runs``
    times."""
    result = Result(f"ansible {module}", case)
    folder = workdir / f"ansible-{module}-{case.label}"
    folder.mkdir()
    inventory = folder / "inventory.ini"
    inventory.write_text(inventory_text(case, ansible.python), encoding="utf-8")
    env = ansible_env(workdir, folder)
    argv = [str(ansible.playbook), "-i", str(inventory), "-f", str(case.batch),
            "-e", f"batch={case.batch}", "-e", f"seconds={case.seconds}",
            str(ANSIBLE_FOLDER / f"rolling-{module}.yml")]

    for run in range(runs):
        times = folder / f"times-{run}.json"
        log = folder / f"output-{run}.txt"
        env["SHIPLINE_BENCH_TIMES"] = str(times)
        child = run_child(argv, cwd=folder, env=env, log=log, timeout=timeout)
        try:
            check_child(child, log, timeout)
            result.samples.append(Sample(_play_seconds(times, log, case), child))
        except RunFailed as exc:
            result.error = str(exc)
            return result
    return result


def _play_seconds(times: Path, log: Path, case: Case) -> float:
    changed = count_changed_hosts(log)
    if changed != case.instances:
        raise RunFailed(f"{changed} of {case.instances} hosts changed: {_tail(log)}")
    if not times.exists():
        raise RunFailed(f"the bench_timer callback wrote no {times.name}")
    recorded = json.loads(times.read_text(encoding="utf-8"))
    return float(recorded["finished"]) - float(recorded["play_started"])


# -- output ------------------------------------------------------------------------------


def machine_lines() -> list[str]:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(encoding="utf-8"),
                          re.MULTILINE)
        model = found.group(1).strip() if found else model
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [f"machine: {os.cpu_count()} CPUs, {model}, {platform.system()} {platform.release()}",
            f"python {platform.python_version()}, {now}, load average {_load()}"]


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f}"


def _max(values: list[Any]) -> Any:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def result_line(result: Result) -> str:
    if result.error is not None:
        return f"  {result.tool:<17} not measured: {result.error}"
    rolling = result.rolling()
    children = [sample.child for sample in result.samples if sample.child is not None]
    process = f"{statistics.median(c.wall for c in children):.2f}" if children else "n/a"
    rss = _max([child.max_rss_kib for child in children])
    pss = _max([child.tree_pss_kib for child in children])
    spread = f"{min(rolling):.2f}-{max(rolling):.2f}"
    return (f"  {result.tool:<17} {statistics.median(rolling):9.2f} {result.ratio():9.2f}x "
            f"{spread:>13} {process:>10} {_mib(rss):>8} {_mib(pss):>9} {len(rolling):>5}")


def print_case(case: Case, results: list[Result]) -> None:
    print(f"\n{case.describe()}")
    print(f"  {'tool':<17} {'rolling s':>9} {'/critical':>10} {'rolling range':>13} "
          f"{'process s':>10} {'RSS MiB':>8} {'tree MiB':>9} {'runs':>5}")
    for result in results:
        print(result_line(result))

    shipline = results[0]
    if shipline.error is None:
        verdict = "met" if shipline.goal_met() else "NOT met"
        print(f"  shipline goal, at most {case.goal}x the critical path: {verdict} "
              f"({shipline.ratio():.3f}x)")


# -- main --------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time rolling deploys of 'sleep' with shipline and with ansible-playbook "
        "against the critical path (batches x sleep time).")
    parser.add_argument("--quick", action="store_true",
                        help="run only case (a): 300 instances, batches of 10")
    parser.add_argument("--case", choices=[case.label for case in CASES],
                        help="run only this case (default: every case)")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs of shipline and of the floor per case (default 3)")
    parser.add_argument("--ansible-runs", type=int, default=1,
                        help="timed ansible-playbook runs per case and module (default 1)")
    parser.add_argument("--no-ansible", action="store_true",
                        help="skip ansible-playbook (and its installation)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds one run may take before it is killed (default 900)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write every run's numbers to PATH as JSON")
    return parser.parse_args()


def load_ansible(skip: bool) -> Ansible | str:
    """Return the Ansible to measure, or the reason it is not measured."""
    if skip:
        return "skipped (--no-ansible)"
    try:
        ansible = find_or_install_ansible(ANSIBLE_VENV)
    except AnsibleUnavailable as exc:
        return f"ansible-core could not be installed: {exc}"
    print(f"ansible-core {ansible.version} from {ANSIBLE_VENV}")
    return ansible


def measure_case(case: Case, ansible: Ansible | str, workdir: Path,
                 args: argparse.Namespace) -> list[Result]:
    results = [measure_shipline(case, workdir, args.runs, args.timeout),
               measure_floor(case, args.runs)]
    for module in ANSIBLE_MODULES:
        if isinstance(ansible, str):
            results.append(Result(f"ansible {module}", case, error=ansible))
        else:
            results.append(measure_ansible(case, module, ansible, workdir, args.ansible_runs,
                                           args.timeout))
    return results


def main() -> int:
    args = parse_args()
    cases = CASES[:1] if args.quick else [case for case in CASES
                                          if args.case in (None, case.label)]
    for line in machine_lines():
        print(line)
    ansible = load_ansible(args.no_ansible)
    if isinstance(ansible, str):
        print(f"ansible: not measured: {ansible}")

    everything: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shipline-bench-") as folder:
        for case in cases:
            results = measure_case(case, ansible, Path(folder), args)
            print_case(case, results)
            everything.extend(results)

    print(f"\nload average at the end: {_load()}")
    print("rolling: median; /critical: median / critical path; process: median wall time "
          "of the whole command; RSS: largest single process (wait4 ru_maxrss); tree: peak "
          f"summed PSS of the process tree, sampled every {SAMPLE_INTERVAL} s; both maxima "
          "over the runs.")
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_json() for r in everything], indent=2) + "\n",
                             encoding="utf-8")

    shipline = [result for result in everything if result.tool == "shipline"]
    return 0 if all(result.goal_met() for result in shipline) else 1


if __name__ == "__main__":
    sys.exit(main())
