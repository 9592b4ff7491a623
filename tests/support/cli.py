"""The CLI in this process: what `python -m core ARGS` prints and exits with, without starting a Python (the
process boundary is tested where it is the point: locks, kills, two writers)."""
from __future__ import annotations


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python -m core ARGS`, run as `main(ARGS)` here. argparse's own exits
    (--help, a usage error) come back as their code too. A `--db` sets SLM_DB as the command does; the root
    conftest restores the environment after each test."""
    from core.cli import main
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out, err = capsys.readouterr()
    return code, out, err
