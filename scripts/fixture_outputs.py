"""Write meshdoctor's output on every fixture to one folder, so two trees can be compared.

For each scenario and rule case under fixtures/, runs `meshdoctor check` in every output format
and with `--emit-fixes`, and writes `<case>.<format>` plus the emitted files and the exit code.
Used to prove that a refactoring changes no output: run it before and after, then `diff -r`. Run it
with the Python of the environment where the tree to measure is installed (its `meshdoctor` script is
the one run).

    python scripts/fixture_outputs.py OUT_DIR
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("text", "json", "yaml", "markdown", "html", "sarif", "junit")


def cases() -> list[Path]:
    """Every scenario folder, then every rule case folder."""
    fixtures = ROOT / "fixtures"
    scenarios = sorted(p for p in (fixtures / "scenarios").iterdir() if p.is_dir())
    rule_cases = sorted(p for p in (fixtures / "rules").glob("*/*") if p.is_dir())
    return scenarios + rule_cases


def run_case(case: Path, out: Path) -> None:
    """One case in every format (exit code, stdout and stderr) and its emitted fixes."""
    name = str(case.relative_to(ROOT / "fixtures")).replace("/", "__")
    # Paths relative to the checkout, so that two checkouts of the same tree give the same output.
    relative = str(case.relative_to(ROOT))
    base = [str(Path(sys.executable).parent / "meshdoctor"), "check", "-q", "--from", relative, "--width", "100"]
    if (case / "logs").is_dir():
        base += ["--logs", f"{relative}/logs"]
    for fmt in FORMATS:
        done = subprocess.run([*base, "-o", fmt], capture_output=True, text=True, cwd=ROOT)
        (out / f"{name}.{fmt}").write_text(f"exit {done.returncode}\n{done.stdout}{done.stderr}")
    fixes = out / f"{name}.fixes"
    subprocess.run([*base, "-o", "json", "--emit-fixes", str(fixes)], capture_output=True, cwd=ROOT)


def main() -> int:
    """Write every case's outputs to the folder given as the only argument."""
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda case: run_case(case, out), cases()))
    print(f"{len(cases())} cases x {len(FORMATS)} formats + fixes written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
