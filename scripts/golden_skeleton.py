"""Print a golden-set ``[[tool]]`` skeleton (every page and its sha256) to start labelling.

    .venv/bin/python scripts/golden_skeleton.py SLUG ROOT [--corpus DIR] [--relative-to DIR]

``ROOT`` is written into the skeleton as given (``corpus:llama-4`` or a path relative to the
golden file); ``--corpus`` resolves ``corpus:`` roots, ``--relative-to`` (the golden file's
folder, default ``.``) resolves relative ones. See docs/evals.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from decomposer.evals.golden import resolve_root, skeleton


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slug")
    parser.add_argument("root")
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--relative-to", type=Path, default=Path("."))
    args = parser.parse_args()
    folder = resolve_root(args.root, args.relative_to, args.corpus)
    print(skeleton(args.slug, args.root, folder))


if __name__ == "__main__":
    main()
