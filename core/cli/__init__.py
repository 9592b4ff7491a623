"""`python -m core <command>`: the headless face of the app. The router is `main` (``core.cli.main``);
one thin module per command group (`models`, `bench`, `runs`, `quality`, `decide`, `store`, `campaign`)."""
from core.cli.main import COMMAND_MODULES, build_parser, main  # noqa: F401
