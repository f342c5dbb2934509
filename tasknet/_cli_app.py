"""``tasknet app …``: the app owner's commands (build an image, register it on chain, list, deprecate,
allow requesters)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from oracle.canonical import step_from_options as canonical_step
from oracle.client import Client

from ._cli_common import amount_arg, emit_json, err, json_option, out, tokens, with_client

HELP_APP = "Apps: build a Docker image, push it, register it on chain, list apps."
HELP_APP_BUILD = """Build an app image from CONTEXT (a folder with a Dockerfile FROM a local base image; no
network during the build) and print its image id. With --push, push it to the registry too.

\b
Example:
  tasknet image base && tasknet app build examples/povray --tag tasknet/povray:1 --push
"""
HELP_APP_REGISTER = """Register IMAGE (a local image tag) as an app: pushed to the registry, pinned by image id,
metadata on IPFS. Prints the app id.

\b
Example:
  tasknet app register tasknet/povray:1 --name povray --price 0.01 --deterministic-file frame.bmp
  tasknet app register my/app:2 --name private-app --private --allow 0x7099...79C8
  tasknet app register my/app:3 --name no-registry --no-push --ipfs-archive
  tasknet app register tasknet-examples/montecarlo:1 --name pi --canonicalize 'python3 /app/canon.py 2'

--canonicalize CMD declares the app's canonicalise step (results that are not bit-identical: the step's output is
digested and voted on; see the README). The step is bound to the app by labels of its image: when IMAGE does not
already declare exactly this step, a thin image adding the labels is built on top of it, tagged IMAGE-canonicalize,
and that image is the one registered (its id is the app's digest).
"""
HELP_APP_LIST = """List registered apps (--mine: only this account's).

\b
Example:
  tasknet app list --json
"""
HELP_APP_DEPRECATE = """Deprecate an app you own: no new job may use it.

\b
Example:
  tasknet app deprecate 3 --as app-owner
"""
HELP_APP_ALLOW = """Allow (or with --revoke, disallow) requesters to use a private app you own.

\b
Example:
  tasknet app allow 3 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
"""


@click.group(help=HELP_APP)
def app() -> None:
    pass


@app.command("build", help=HELP_APP_BUILD)
@click.argument("context", type=click.Path(path_type=Path, file_okay=False))
@click.option("--tag", required=True, help="image tag, e.g. tasknet/povray:1")
@click.option("--dockerfile", default="Dockerfile", show_default=True)
@click.option("--push", is_flag=True, help="push to the image registry and print the pinned reference")
@json_option
@with_client("app-owner")
def app_build(client: Client, context: Path, tag: str, dockerfile: str, push: bool, as_json: bool) -> None:
    with err.status(f"building {tag}"):
        image_id = client.apps.build(context, tag, dockerfile=dockerfile)
    ref = None
    if push:
        with err.status(f"pushing {tag}"):
            ref = client.apps.push(tag)
    if as_json:
        emit_json({"tag": tag, "image_id": image_id, "ref": ref})
    else:
        out.print(f"built {tag}: {image_id}" + (f"\npushed: {ref}" if ref else ""))


@app.command("register", help=HELP_APP_REGISTER)
@click.argument("image")
@click.option("--name", required=True, help="app name (in its metadata)")
@click.option("--description", default="")
@click.option("--category", default=None, help="category workers may filter on")
@click.option("--price", type=amount_arg, default="0", show_default=True, help="paid to you per finished task")
@click.option("--private", is_flag=True, help="only --allow'ed requesters may use it")
@click.option("--allow", "allowed", multiple=True, help="requester address (repeatable)")
@click.option("--deterministic-file", default=None, help="output file the result digest covers")
@click.option("--canonicalize", "canonicalize", default=None, metavar="CMD",
              help="canonicalise step: the whole argv, as a JSON array or words ('/app/canon 2'); it reads the raw "
                   "output at /in and writes the canonical output to /out")
@click.option("--canonicalize-image", default=None, metavar="REF@sha256:…",
              help="run the step in this second image, pinned by digest (default: the app's own image)")
@click.option("--canonicalize-timeout", type=click.FloatRange(min=0.001, max=3600), default=None,
              help="the step's wall clock in seconds (default 60)")
@click.option("--no-push", is_flag=True, help="register the local tag as is (workers need the image locally, "
              "or --ipfs-archive)")
@click.option("--ipfs-archive", is_flag=True, help="also put a 'docker save' archive on IPFS for workers to load "
              "(with --no-push, the app's image reference is ipfs://CID)")
@json_option
@with_client("app-owner")
def app_register(client: Client, image: str, name: str, description: str, category: str | None, price: int,
                 private: bool, allowed: tuple[str, ...], deterministic_file: str | None, canonicalize: str | None,
                 canonicalize_image: str | None, canonicalize_timeout: float | None, no_push: bool,
                 ipfs_archive: bool, as_json: bool) -> None:
    step = None
    if canonicalize is not None:
        step = canonical_step(canonicalize, canonicalize_image, canonicalize_timeout)
    elif canonicalize_image is not None or canonicalize_timeout is not None:
        raise click.UsageError("--canonicalize-image and --canonicalize-timeout need --canonicalize CMD")
    with err.status(f"registering {image}"):
        info = client.apps.register(image, name=name, description=description, category=category, price=price,
                                   public=not private, requesters=allowed, deterministic_file=deterministic_file,
                                   push=not no_push, ipfs_archive=ipfs_archive, canonicalize=step)
    if as_json:
        emit_json(info)
    else:
        out.print(f"app {info.app_id} registered: {info.image_ref} ({info.image_digest}), price {tokens(info.price)}")


@app.command("list", help=HELP_APP_LIST)
@click.option("--mine", is_flag=True, help="only apps owned by this account")
@json_option
@with_client("app-owner")
def app_list(client: Client, mine: bool, as_json: bool) -> None:
    apps = client.apps.list(owner=client.address if mine else None)
    if as_json:
        emit_json(apps)
        return
    table = Table("id", "owner", "image", "price", "access", "deterministic file", "status")
    for a in apps:
        table.add_row(str(a.app_id), a.owner, a.image_ref, tokens(a.price), "public" if a.public else "private",
                      a.deterministic_file or "-", "deprecated" if a.deprecated else "active")
    out.print(table)


@app.command("deprecate", help=HELP_APP_DEPRECATE)
@click.argument("app_id", type=int)
@with_client("app-owner")
def app_deprecate(client: Client, app_id: int) -> None:
    client.apps.deprecate(app_id)
    out.print(f"app {app_id} deprecated")


@app.command("allow", help=HELP_APP_ALLOW)
@click.argument("app_id", type=int)
@click.argument("requesters", nargs=-1, required=True)
@click.option("--revoke", is_flag=True, help="remove them instead")
@with_client("app-owner")
def app_allow(client: Client, app_id: int, requesters: tuple[str, ...], revoke: bool) -> None:
    client.apps.allow(app_id, requesters, allowed=not revoke)
    out.print(f"app {app_id}: {len(requesters)} requester(s) {'removed' if revoke else 'allowed'}")


def register(cli: click.Group) -> None:
    """Add the ``app`` group to the ``tasknet`` CLI."""
    cli.add_command(app)
