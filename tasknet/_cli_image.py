"""``tasknet image …``: the local base images apps are built FROM."""

from __future__ import annotations

import click

from oracle.exceptions import ClientError

from ._cli_common import emit_json, err, json_option, out

HELP_IMAGE = "Local base images (no public registry is reachable: they are built on this machine)."
HELP_IMAGE_BASE = """Build the local base images apps are built FROM, once (cached; --force rebuilds):
busybox (~1 s), python3 (debootstrap, ~35 s, needs root and a Debian mirror) and, with --povray, POV-Ray.

\b
Example:
  tasknet image base
  tasknet image base --no-python --povray
"""


@click.group(help=HELP_IMAGE)
def image() -> None:
    pass


@image.command("base", help=HELP_IMAGE_BASE)
@click.option("--python/--no-python", default=True, show_default=True)
@click.option("--povray", is_flag=True, help="also tasknet/base-povray:bookworm (for examples/povray)")
@click.option("--force", is_flag=True)
@click.option("--mirror", default=None, help="Debian mirror for debootstrap")
@json_option
def image_base(python: bool, povray: bool, force: bool, mirror: str | None, as_json: bool) -> None:
    import docker as docker_sdk

    from oracle.images import BUSYBOX_BASE, PYTHON_BASE, build_base, build_busybox_base, build_python_base

    try:
        client = docker_sdk.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises many types for "no engine"
        raise ClientError(f"no Docker engine answers ({exc}); start Docker ('tasknet up' does) or set DOCKER_HOST"
                          ) from exc
    built: dict[str, str] = {}
    with err.status("building tasknet/base-busybox"):
        built[BUSYBOX_BASE] = build_busybox_base(client, force=force)
    if python:
        with err.status("building tasknet/base-python (debootstrap, ~35 s the first time)"):
            built[PYTHON_BASE] = build_python_base(client, force=force, mirror=mirror)
    if povray:
        tag = "tasknet/base-povray:bookworm"
        with err.status("building tasknet/base-povray (debootstrap, ~30 s the first time)"):
            built[tag] = build_base(client, tag, ["povray", "povray-includes"], force=force, mirror=mirror)
    if as_json:
        emit_json(built)
    else:
        for tag, image_id in built.items():
            out.print(f"{tag}: {image_id}")


def register(cli: click.Group) -> None:
    """Add the ``image`` group to the ``tasknet`` CLI."""
    cli.add_command(image)
