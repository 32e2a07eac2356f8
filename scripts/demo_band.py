"""Record the band the demo golden set's replayed figures must stay within (CI checks it).

    .venv/bin/python scripts/demo_band.py           # print the band for the current code
    .venv/bin/python scripts/demo_band.py --write   # write fixtures/golden/demo-band.toml

Runs ``decomposer eval fixtures/golden/demo.toml --replay fixtures/recordings`` in a temporary
data dir and writes shares ± 0.03 and counts ± 10 % around its figures (``evals.band``). Update
the band only for a change meant to move the figures, and say why in the commit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from decomposer.cli.app import main as cli
from decomposer.evals.band import record_band
from decomposer.evals.report import EvalReport

REPO = Path(__file__).resolve().parents[1]
BAND = REPO / "fixtures" / "golden" / "demo-band.toml"
COMMENT = """\
Band for `decomposer eval fixtures/golden/demo.toml --replay fixtures/recordings`: the figures
must stay within [min, max] (tests/test_eval_cli.py; `--band` on the command line).
Made by `python scripts/demo_band.py --write`; update it only for a change meant to move them."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {BAND.relative_to(REPO)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        out = io.StringIO()
        demo = ["eval", str(REPO / "fixtures/golden/demo.toml")]
        with contextlib.redirect_stdout(out):
            code = cli(
                ["--home", home, *demo, "--replay", str(REPO / "fixtures/recordings"), "--json"]
            )
    if code:
        raise SystemExit(code)
    report = EvalReport.model_validate(json.loads(out.getvalue())["report"])
    band = record_band(report, COMMENT)
    if args.write:
        BAND.write_text(band, encoding="utf-8")
        print(f"wrote {BAND}")
    else:
        print(band, end="")


if __name__ == "__main__":
    main()
