"""Live conference mode: the audience buys from their phones.

`flashsale up --public` listens on every interface, turns the protections on
(a rate limit per client, a random admin token: `Settings` insists on both in
public mode) and shows the buyer URL as a QR code, in the terminal and as SVG
for the slides and the notebook.
"""
import secrets
import socket
from pathlib import Path

import segno


def lan_address() -> str:
    """The address other machines on this network reach us at (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def buyer_url(port: int) -> str:
    return f"http://{lan_address()}:{port}/"


def admin_token(home: Path) -> str:
    """A random admin token, made once per stack home and kept private to its owner."""
    path = home / "admin-token"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def qr_text(url: str) -> str:
    """The QR code as text for a terminal (two rows per line, so it stays square and small)."""
    from io import StringIO

    out = StringIO()
    segno.make(url, error="m").terminal(out, compact=True)
    return out.getvalue()


def qr_svg(url: str, path: Path | None = None, scale: int = 8) -> str:
    """The QR code as SVG, for a slide or a notebook (`IPython.display.SVG`)."""
    from io import BytesIO

    out = BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=scale, border=2, xmldecl=False)
    svg = out.getvalue().decode()
    if path:
        path.write_text(svg)
    return svg
