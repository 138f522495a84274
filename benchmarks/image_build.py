"""A cold build of one Caffe source, phase by phase, and what the runtime image holds.

Runs on the host with an engine (the base image must be there: invoke base-image):

    python benchmarks/image_build.py --caffe-src path/to/caffe[.tar.gz] [--tag T] [--variant cpu]
        [--distro bookworm --distro trixie]

Builds with --no-cache (the base image stays), times every Dockerfile step from the
engine's build stream, and prints one table: the seconds of each phase (build deps,
compile, wheels, runtime deps, final), the compile alone, the ratio of the whole build to
the compile, the runtime image's size and its 10 largest items (packages, libraries bundled
from packages, wheels). The compile is the
baseline: the ratio is what everything else costs on the same machine in the same run.
The runtime base builds beside the build stage (caffebox.images.build), so its row is
wall time spent at the same time as the build deps, not added to the whole build. With
--distro twice, each release is built cold in turn and a last table compares them with the
first (build seconds and size as ratios).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time

from caffebox import engine, images
from caffebox.source import CaffeSource
from caffebox.variants import DISTROS, get_variant, on_distro

# Which Dockerfile step belongs to which phase: the first pattern found in its text.
PHASES = [
    ("compile", r"RUN build-caffe"),
    ("wheels", r"pip(3)? install"),
    ("bundle", r"RUN bundle-libs|COPY --from=bundle /opt/caffe"),
    ("build deps", r"apt-get install|RUN prepare-caffe|^\d+:\+ installing "),
]


class TimedLog(io.TextIOBase):
    """A text sink that times each 'Step N/M : ...' of the classic builder's output, and
    within a step the packages our scripts install ('==> caffebox: installing ...' up to
    their next line of that kind): build-caffe installs the OpenCV packages the link needs
    between its make calls, and that is build deps, not compile."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.steps: list[tuple[str, float]] = []  # (step text, start)
        self.call = 0
        self.last = time.monotonic()  # when the last output came: the build's end
        self.enclosing = ""  # the step an install interrupts, while it runs

    def write(self, text: str) -> int:
        now = self.last = time.monotonic()
        for line in text.splitlines():
            if m := re.match(r"Step (\d+)/\d+ : (.*)", line):
                if m.group(1) == "1":  # each build call starts again at step 1
                    self.call += 1
                self.steps.append((f"{self.call}:{m.group(2)}", now))
                self.enclosing = ""
            elif m := re.match(r"==> caffebox: (.*)", line):
                if m.group(1).startswith("installing "):
                    self.enclosing = self.enclosing or self.steps[-1][0]
                    self.steps.append((f"{self.call}:+ {m.group(1)}", now))
                elif self.enclosing:
                    self.steps.append((self.enclosing, now))
                    self.enclosing = ""
        if self.echo:
            sys.stderr.write(text)
        return len(text)

    def durations(self, end: float) -> list[tuple[str, float]]:
        starts = [t for _, t in self.steps] + [end]
        return [(s, starts[i + 1] - t) for i, (s, t) in enumerate(self.steps)]


def phase_of(step: str, last_call: int) -> str:
    if step.startswith(f"{last_call}:"):
        return "final"
    for phase, pattern in PHASES:
        if re.search(pattern, step):
            return phase
    return "other"


# What takes the space, in one list: installed packages, the libraries bundled from
# packages (grouped by the package they came from), and the pydeps wheels.
SIZES = r"""
dpkg-query -W -f '${Installed-Size} package ${Package}\n' | awk '{print $1 * 1024, $2, $3}'
cd /opt/caffe/lib/deps 2>/dev/null && while read -r f pkg v; do
    echo "$(stat -Lc %s "$f") bundled $pkg"; done < PACKAGES
cd /opt/caffe/pydeps 2>/dev/null && for d in *; do
    echo "$(du -sb "$d" | cut -f1) wheel $d"; done
"""


def largest(client, tag: str, n: int = 10) -> list[tuple[int, str]]:
    """The n largest items of the image as (bytes, 'kind name'), bundled files summed per
    package."""
    raw = client.containers.run(
        tag, ["sh", "-c", SIZES], remove=True, network_mode="none", entrypoint=[]
    ).decode()
    sizes: dict[str, int] = {}
    for line in raw.splitlines():
        size, kind, name = line.split()
        sizes[f"{kind} {name}"] = sizes.get(f"{kind} {name}", 0) + int(size)
    return sorted(((b, k) for k, b in sizes.items()), reverse=True)[:n]


def measure(client, args, distro: str) -> dict[str, float]:
    """One cold build on `distro` with its phase table; the figures the comparison needs."""
    variant = get_variant(args.variant)
    tag = args.tag if len(args.distro) == 1 else f"{args.tag}-{distro}"
    request = images.BuildRequest(
        variant=on_distro(variant, distro) if distro else variant,
        source=CaffeSource.from_options(args.caffe_src, None, None), tag=tag,
        jobs=args.jobs or None, nocache=True,
    )  # fmt: skip
    log, beside = TimedLog(echo=not args.quiet), TimedLog(echo=False)
    started = time.monotonic()
    images.build(client, request, out=log, runtime_base_out=beside)
    total = time.monotonic() - started
    phases: dict[str, float] = {}
    for step, seconds in log.durations(started + total):
        phase = phase_of(step, log.call)
        phases[phase] = phases.get(phase, 0.0) + seconds
    # The runtime base's whole call, from the build's start: it ran beside the build deps.
    beside_s = beside.last - started
    size = client.images.get(tag).attrs["Size"]
    compile_s = phases.get("compile", 0.0)
    print(f"\ncold build of {args.caffe_src} ({args.variant}, {distro or 'default'}), {tag}")
    print(f"{'phase':<14}{'seconds':>9}{'x compile':>11}")
    ratio = beside_s / compile_s if compile_s else float("nan")
    print(f"{'runtime deps':<14}{beside_s:>9.0f}{ratio:>11.2f}  (beside build deps)")
    for phase in ("build deps", "compile", "wheels", "bundle", "final", "other"):
        if phase in phases:
            ratio = phases[phase] / compile_s if compile_s else float("nan")
            print(f"{phase:<14}{phases[phase]:>9.0f}{ratio:>11.2f}")
    print(f"{'whole build':<14}{total:>9.0f}{total / compile_s if compile_s else 0:>11.2f}")
    if args.steps:
        print("slowest steps (call:instruction):")
        slowest = sorted(log.durations(started + total), key=lambda d: -d[1])
        for step, seconds in slowest[: args.steps]:
            print(f"  {seconds:>7.1f} s  {step[:90]}")
    print(f"runtime image: {size / 1e6:.0f} MB")
    print("largest items (installed packages, bundled libraries by package, wheels):")
    for item_size, name in largest(client, tag):
        print(f"  {item_size / 1e6:>7.1f} MB  {name}")
    return {"whole": total, "compile": compile_s, "mb": size / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--caffe-src", required=True)
    parser.add_argument("--tag", default="caffebox:bench")
    parser.add_argument("--variant", default="cpu")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="do not echo the build log")
    parser.add_argument(
        "--distro", action="append", default=[], choices=DISTROS,
        help="build on this Debian release (repeat: each is built cold in turn, then compared "
        "with the first)",
    )  # fmt: skip
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        metavar="N",
        help="also print the N slowest Dockerfile steps",
    )
    args = parser.parse_args()
    client = engine.connect()
    results = {d: measure(client, args, d) for d in (args.distro or [""])}
    if len(results) > 1:
        base_name, base = next(iter(results.items()))
        print(f"\n{'distro':<10}{'build s':>9}{'compile s':>11}{'MB':>7}"
              f"{'build x ' + base_name:>18}{'MB x ' + base_name:>15}")  # fmt: skip
        for name, r in results.items():
            print(f"{name:<10}{r['whole']:>9.0f}{r['compile']:>11.0f}{r['mb']:>7.0f}"
                  f"{r['whole'] / base['whole']:>18.2f}{r['mb'] / base['mb']:>15.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
