"""`flashsale lab`: JupyterLab on the notebooks."""
import subprocess
import sys
from pathlib import Path

import typer

app = typer.Typer()


@app.command()
def lab(port: int = typer.Option(8888)) -> None:
    """Open JupyterLab on the notebooks."""
    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    subprocess.run([sys.executable, "-m", "jupyter", "lab", f"--port={port}",
                    f"--notebook-dir={notebooks if notebooks.exists() else Path.cwd()}"])
