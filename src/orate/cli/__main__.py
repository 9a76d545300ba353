"""``python -m orate.cli``: the same commands as the ``orate`` script."""

from orate.cli import app

app(prog_name="orate")
