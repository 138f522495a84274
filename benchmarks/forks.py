"""The fork matrix: does each Caffe fork build, import and train a Python-layer net?

Runs on the host with an engine (the base image must be there: invoke base-image):

    python benchmarks/forks.py NAME=SOURCE [NAME=SOURCE ...] [--gpu] [--distro D] [--json F]

SOURCE is a tree, a .tar.gz, or GITDIR@REF (a git repository or bare mirror, archived at
REF). For each fork: `caffebox build-cpu` (seconds, image MB), with --gpu also `build-gpu
--compile-only` on the offline CUDA 13 base of the same Debian release (`caffebox cuda-base
--distro D` first), the layer types
the fork adds over BVLC master (caffe.layer_type_list() in its image against
benchmarks/bvlc-layers.txt), `import caffe, caffe.io, caffe.draw`, and the digits example
(a Python data layer) trained for 300 iterations. One table at the end; the first error
line of a failure says why. Build logs stay in --logs (default /tmp/caffebox-forks).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from caffebox.settings import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
BVLC_LAYERS = Path(__file__).resolve().parent / "bvlc-layers.txt"
CAFFEBOX = [sys.executable, "-m", "caffebox"]
ERROR = re.compile(r"(error:|Error|(?<!==> )caffebox: (?!building|the runtime base|built)|No rule|"
                   r"cannot|Check failed|undefined reference)")  # fmt: skip


@dataclass
class Result:
    name: str
    source: str
    commit: str = ""
    date: str = ""
    build_s: float = 0.0
    image_mb: float = 0.0
    built: bool = False
    gpu_compiles: str = "not run"
    fork_layers: list[str] = field(default_factory=list)
    imports: bool = False
    trains: bool = False
    error: str = ""


def tarball(name: str, source: str, folder: Path) -> tuple[str, str, str]:
    """(path to build from, commit, commit date) for a tree, a tarball or GITDIR@REF."""
    if "@" in source and not Path(source).exists():
        gitdir, ref = source.rsplit("@", 1)
        log = ["git", "--git-dir", gitdir, "log", "-1", "--format=%H %cs", ref]
        info = subprocess.run(log, capture_output=True, text=True, check=True).stdout.split()
        out = folder / f"{name}.tar.gz"
        with open(out, "wb") as f:
            archive = subprocess.Popen(["git", "--git-dir", gitdir, "archive", f"--prefix={name}/",
                                        ref], stdout=subprocess.PIPE)  # fmt: skip
            subprocess.run(["gzip", "-n"], stdin=archive.stdout, stdout=f, check=True)
            archive.wait()
        return str(out), info[0], info[1]
    return source, "", ""


def first_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if ERROR.search(line)]
    lines = [x for x in lines if "error_already_set" not in x and "-Werror" not in x]
    lines.sort(key=lambda x: "error:" not in x)  # a compiler's error first, in log order
    return (lines[0] if lines else log.strip().splitlines()[-1] if log.strip() else "")[:160]


def in_image(tag: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "python3", "-c",
                           script], capture_output=True, text=True)  # fmt: skip


@dataclass
class Matrix:
    """How every fork of one run is measured."""

    work: Path
    logs: Path
    gpu: bool = False
    cold: bool = False
    distro: str = ""  # empty: caffebox's default (the distro setting)


def measure(name: str, source: str, m: Matrix) -> Result:
    path, commit, date = tarball(name, source, m.work)
    result = Result(name=name, source=source, commit=commit[:10], date=date)
    tag = f"caffebox:fork-{name}" + (f"-{m.distro}" if m.distro else "")
    started = time.monotonic()
    common = ["--caffe-src", path, *(["--distro", m.distro] if m.distro else [])]
    cold_args = ["--no-cache"] if m.cold else []
    done = subprocess.run([*CAFFEBOX, "build-cpu", *common, "--tag", tag, *cold_args],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    logs = m.logs
    result.build_s = round(time.monotonic() - started)
    (logs / f"{name}-cpu.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        result.error = first_error(done.stdout + done.stderr)
        return result
    result.built = True
    size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag],
                          capture_output=True, text=True, check=True)  # fmt: skip
    result.image_mb = round(int(size.stdout) / 1e6)
    layers = in_image(tag, "import caffe; print('\\n'.join(caffe.layer_type_list()))")
    bvlc = {line.strip() for line in BVLC_LAYERS.read_text().splitlines()
            if line.strip() and not line.startswith("#")}  # fmt: skip
    result.fork_layers = sorted(set(layers.stdout.split()) - bvlc)
    result.imports = in_image(tag, "import caffe, caffe.io, caffe.draw").returncode == 0
    with tempfile.TemporaryDirectory() as project:
        shutil.copytree(ROOT / "examples" / "digits", Path(project) / "examples" / "digits")
        solver = Path(project) / "examples" / "digits" / "solver.prototxt"
        solver.write_text(solver.read_text().replace("max_iter: 1500", "max_iter: 300")
                          .replace("test_interval: 500", "test_interval: 300"))  # fmt: skip
        train = [*CAFFEBOX, "train", "examples/digits/solver.prototxt", "--image", tag]
        trained = subprocess.run(train, cwd=project, capture_output=True, text=True)
        (logs / f"{name}-train.log").write_text(trained.stdout + trained.stderr)
        result.trains = trained.returncode == 0
        if not result.trains:
            result.error = first_error(trained.stderr) or "training failed"
    if m.gpu:  # on caffebox's offline CUDA 13 base of the same Debian release
        done = subprocess.run(
            [*CAFFEBOX, "build-gpu", "--caffe-src", path, "--tag", f"{tag}-gpu-build",
             "--compile-only", "--distro", m.distro or DEFAULTS["caffebox"]["distro"],
             "--cuda", "13", "--cuda-arch", "90"],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        (logs / f"{name}-gpu.log").write_text(done.stdout + done.stderr)
        result.gpu_compiles = "yes" if done.returncode == 0 else "no"
        if done.returncode != 0 and not result.error:
            result.error = "gpu: " + first_error(done.stdout + done.stderr)
    return result


def table(results: list[Result]) -> str:
    head = ("fork", "commit", "date", "build s", "MB", "fork layers", "import", "trains", "gpu",
            "first error")  # fmt: skip
    rows = [head]
    for r in results:
        layers = f"{len(r.fork_layers)}: {', '.join(r.fork_layers[:4])}" if r.fork_layers else "0"
        if len(r.fork_layers) > 4:
            layers += ", ..."
        rows.append((r.name, r.commit, r.date, str(r.build_s), str(r.image_mb or "-"), layers,
                     "yes" if r.imports else "no", "yes" if r.trains else "no", r.gpu_compiles,
                     r.error or ""))  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("forks", nargs="+", help="NAME=SOURCE")
    parser.add_argument("--gpu", action="store_true", help="also build-gpu --compile-only")
    parser.add_argument("--no-cache", action="store_true",
                        help="cold builds: the build seconds compare across forks")  # fmt: skip
    parser.add_argument("--distro", default="", help="Debian release (default: caffebox's)")
    parser.add_argument("--json", default="", help="write the results here too")
    parser.add_argument("--logs", default="/tmp/caffebox-forks", help="build and train logs")
    args = parser.parse_args()
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for item in args.forks:
            name, _, source = item.partition("=")
            matrix = Matrix(Path(work), logs, args.gpu, args.no_cache, args.distro)
            result = measure(name, source, matrix)
            results.append(result)
            print(f"forks: {name}: built={result.built} trains={result.trains} "
                  f"{result.error}", flush=True)  # fmt: skip
            if args.json:  # after each fork: a long matrix stopped early keeps its rows
                Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.trains for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
