"""Container images without a reachable public registry: local base images, app builds, digest pinning.

Base images are built on this machine and imported with the Docker SDK:

* :data:`BUSYBOX_BASE` — a busybox-static root file system (~1 MB, ~1 s to build): tests, trivial apps and the
  sandbox's output holder.
* :func:`build_base` — ``debootstrap --variant=minbase --include=PACKAGES`` into a temporary folder, trimmed,
  then imported (needs root, debootstrap and a reachable Debian mirror). :func:`build_python_base` is the
  ``python3`` flavour (:data:`PYTHON_BASE`); a POV-Ray base is ``build_base(c, "tasknet/base-povray",
  ["povray", "povray-includes"])``.

Both are cached: a build is skipped when the tag already exists (``force=True`` rebuilds).

Apps are built ``FROM`` these with :func:`build_app_image` — no network, no pull — and pinned by digest. Two
digests exist and both are accepted by :func:`verify_image_digest`:

* the **image id** (``sha256:`` of the image config, which lists every layer's content digest): it is the same
  on every machine that holds the image, however it got there (registry pull or ``docker load`` of an archive
  on IPFS). This is the digest an app registers on chain; :func:`image_digest` returns it.
* the **manifest digest** a registry assigns on push: :func:`push_to_registry` returns
  ``host/repo@sha256:…`` and :func:`pull_by_digest` fetches exactly that (Docker checks it while pulling).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._log import get_logger
from .exceptions import IntegrityError, TasknetError

if TYPE_CHECKING:
    import docker
    from docker.models.images import Image

log = get_logger(__name__)

BUSYBOX_BASE = "tasknet/base-busybox:latest"
PYTHON_BASE = "tasknet/base-python:latest"
DEFAULT_SUITE = "bookworm"
NOBODY_UID = 65534

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# Paths removed from a debootstrapped tree before import: caches and docs nobody runs (~40% of minbase).
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
         "usr/share/locale", "var/cache/debconf/templates.dat-old", "var/log")
_PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
           f"nobody:x:{NOBODY_UID}:{NOBODY_UID}:nobody:/tmp:/bin/false\n")
_GROUP = f"root:x:0:\nnogroup:x:{NOBODY_UID}:\n"


class ImageError(TasknetError):
    """An image could not be built, found, pushed or pulled."""


class ImageDigestMismatch(ImageError, IntegrityError):
    """An image's digest differs from the one it is pinned to."""


# -- lookup --------------------------------------------------------------------------------------
def confinement(user: str, labels: dict[str, str], *, keep_logs: bool = True, hostname: str | None = None
                ) -> dict[str, Any]:
    """The docker-py ``containers.create`` keywords every confined container gets (the Docker API's edge): no
    network, a read-only root, every capability dropped, no new privileges, ``user``, a private IPC namespace, no
    core dumps, ``labels``; with ``keep_logs`` off, no log driver either (the worker's tasks write their logs to
    the output volume); ``hostname`` when given (Docker refuses one beside another container's network). The worker's sandbox and the auditors' :func:`oracle.canonical.run_confined` share it."""
    from docker.types import LogConfig, Ulimit

    return {"network_mode": "none", "read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "user": user, "ipc_mode": "private", "ulimits": [Ulimit(name="core", soft=0, hard=0)], "labels": labels,
            **({} if keep_logs else {"log_config": LogConfig(type="none")}),
            **({} if hostname is None else {"hostname": hostname})}


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _get(client: docker.DockerClient, ref: str) -> Image:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound as exc:
        raise ImageError(
            f"image {ref} is not on this Docker engine; build it (oracle.images.build_app_image / 'docker build') or pull it "
            "by digest from the app's registry"
        ) from exc


def image_digest(client: docker.DockerClient, ref: str) -> str:
    """The image id of ``ref`` (``sha256:<64 hex>``, the config digest): the digest an app is pinned to."""
    return str(_get(client, ref).id)


def verify_image_digest(client: docker.DockerClient, ref: str, expected: str) -> str:
    """Check that local image ``ref`` is the one pinned by ``expected``; return its image id.

    ``expected`` is an image id or a registry manifest digest (``sha256:…``; a ``repo@sha256:…`` reference is
    accepted too). Raises :class:`ImageDigestMismatch` otherwise, :class:`ImageError` when ``ref`` is absent.
    """
    _pinned_digest(expected)  # a malformed pin is refused before asking the engine
    return check_image_pin(_get(client, ref), ref, expected)


def check_image_pin(image: Image, ref: str, expected: str) -> str:
    """:func:`verify_image_digest` on an image already looked up (one engine request fewer)."""
    want = _pinned_digest(expected)
    repo_digests = [d.rsplit("@", 1)[-1] for d in image.attrs.get("RepoDigests") or []]
    if image.id == want or want in repo_digests:
        return str(image.id)
    raise ImageDigestMismatch(
        f"image {ref} has id {image.id} (registry digests: {', '.join(repo_digests) or 'none'}) but is pinned "
        f"to {want}; refuse to run it: the app's registered digest is wrong or the image was replaced — "
        "re-fetch it by digest or re-register the app with the right digest"
    )


def _pinned_digest(expected: str) -> str:
    want = expected.rsplit("@", 1)[-1].lower()
    if not _DIGEST_RE.match(want):
        raise ImageError(f"{expected!r} is not an image digest; expected 'sha256:' followed by 64 hex digits")
    return want


# -- base images ---------------------------------------------------------------------------------
def _split_tag(tag: str) -> tuple[str, str]:
    """``"a/b:1"`` -> ``("a/b", "1")``; no tag means ``latest`` (a registry port is not a tag)."""
    repository, sep, version = tag.rpartition(":")
    if not sep or "/" in version:
        return tag, "latest"
    return repository, version


def _import_rootfs(client: docker.DockerClient, root: Path, tag: str, changes: Sequence[str]) -> str:
    """Tar ``root`` (beside it, in the same temp folder) and ``docker import`` it as ``tag``; return the id."""
    import docker.errors

    archive = root.parent / "rootfs.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry)
    repository, version = _split_tag(tag)
    try:
        client.api.import_image_from_file(str(archive), repository=repository, tag=version, changes=list(changes))
    except docker.errors.APIError as exc:
        raise ImageError(f"docker import of {tag} failed: {exc.explanation or exc}") from exc
    return image_digest(client, tag)


def _changes(cmd: Sequence[str], env: Sequence[str] = ()) -> list[str]:
    """Image config for a base: no USER (Dockerfile RUN steps need root; the sandbox always runs tasks as
    65534:65534 whatever the image says), work in /out like the sandbox does."""
    import json

    return [f"ENV {e}" for e in env] + [f"CMD {json.dumps(list(cmd))}", "WORKDIR /out"]


def build_busybox_base(client: docker.DockerClient, *, tag: str = BUSYBOX_BASE, busybox: str | Path = "/bin/busybox",
                       force: bool = False) -> str:
    """Build (or reuse) a busybox-static image: applet links in /bin, /tmp, an unprivileged ``nobody``.

    Returns the image id. Needs a *static* busybox on the host (Debian ``busybox-static``).
    """
    if not force and image_exists(client, tag):
        return image_digest(client, tag)
    binary = Path(busybox)
    if not binary.is_file():
        raise ImageError(f"busybox not found at {binary}; install Debian's busybox-static "
                         "('apt-get install busybox-static') or pass busybox=PATH")
    started = time.monotonic()
    applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tempfile.TemporaryDirectory(prefix="tasknet-busybox-") as tmp:
        root = Path(tmp) / "rootfs"
        for d in ("bin", "etc", "tmp", "in", "out", "proc", "sys", "dev", "root"):
            (root / d).mkdir(parents=True)
        shutil.copy2(binary, root / "bin" / "busybox")
        (root / "bin" / "busybox").chmod(0o755)
        for applet in applets:
            if applet != "busybox" and not (root / "bin" / applet).exists():
                (root / "bin" / applet).symlink_to("busybox")
        (root / "etc" / "passwd").write_text(_PASSWD)
        (root / "etc" / "group").write_text(_GROUP)
        (root / "tmp").chmod(0o1777)
        image_id = _import_rootfs(client, root, tag, _changes(["/bin/sh"], ["PATH=/bin"]))
    log.info("base_image_built", tag=tag, image_id=image_id, seconds=round(time.monotonic() - started, 2))
    return image_id


def build_base(client: docker.DockerClient, tag: str, packages: Sequence[str], *, suite: str = DEFAULT_SUITE,
               mirror: str | None = None, force: bool = False, cmd: Sequence[str] = ("/bin/sh",),
               timeout: float = 900.0) -> str:
    """Build (or reuse) a Debian ``minbase`` image with ``packages`` installed; return its image id.

    Runs ``debootstrap --variant=minbase --include=PACKAGES SUITE DIR [MIRROR]`` into a temporary folder (removed
    afterwards, even on failure), trims caches and docs, and imports the tree as ``tag``. Needs root (debootstrap
    chroots and creates device nodes) and a reachable Debian mirror.
    """
    if not force and image_exists(client, tag):
        return image_digest(client, tag)
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if os.access("/usr/sbin/debootstrap",
                                                                                        os.X_OK) else None)
    if debootstrap is None:
        raise ImageError(f"cannot build {tag}: debootstrap is not installed; run 'apt-get install debootstrap' "
                         "(scripts/setup does) or load a prebuilt image with 'docker load'")
    if os.geteuid() != 0:
        raise ImageError(f"cannot build {tag}: debootstrap needs root (it chroots and creates device nodes); run "
                         "the build as root once (e.g. 'sudo tasknet …') — the image is cached afterwards")
    bad = [p for p in packages if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", p)]
    if bad:
        raise ImageError(f"invalid Debian package names {bad}; use names as 'apt-cache show' knows them")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tasknet-base-", dir=os.environ.get("TASKNET_BUILD_DIR")) as tmp:
        root = Path(tmp) / "rootfs"
        argv = [debootstrap, "--variant=minbase"]
        if packages:
            argv.append("--include=" + ",".join(packages))
        argv += [suite, str(root)] + ([mirror] if mirror else [])
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ImageError(f"debootstrap for {tag} did not finish within {timeout:.0f} s; check the Debian "
                             "mirror is reachable and fast, or raise timeout=") from exc
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
            raise ImageError(f"debootstrap for {tag} ({' '.join(argv[1:-1 if mirror else None])}) exited with "
                             f"{proc.returncode}: {' | '.join(tail)}; check the package names and the mirror "
                             f"({mirror or 'the default deb.debian.org'})")
        for rel in _TRIM:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(mode=0o755)
        for d in ("in", "out"):
            (root / d).mkdir(exist_ok=True)
        image_id = _import_rootfs(client, root, tag, _changes(
            cmd, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]))
        with contextlib.suppress(OSError):  # debootstrap leaves root-owned, sometimes immutable-looking trees
            shutil.rmtree(root)
    log.info("base_image_built", tag=tag, packages=list(packages), image_id=image_id,
             seconds=round(time.monotonic() - started, 1))
    return image_id


def build_python_base(client: docker.DockerClient, *, tag: str = PYTHON_BASE, force: bool = False,
                      mirror: str | None = None) -> str:
    """Build (or reuse) a Debian minbase image with ``python3`` (~120 MB, ~35 s the first time)."""
    return build_base(client, tag, ["python3"], mirror=mirror, force=force, cmd=("python3",))


# -- app images ----------------------------------------------------------------------------------
def build_app_image(client: docker.DockerClient, context_dir: str | Path, tag: str, *,
                    dockerfile: str = "Dockerfile", buildargs: dict[str, str] | None = None) -> str:
    """``docker build`` ``context_dir`` as ``tag`` with no network and no pull; return the image id.

    The ``FROM`` image must already be local (e.g. :data:`BUSYBOX_BASE`); install what the app needs on the host
    (``pip install --target``, ``apt-get download``) and ``COPY`` it in, since ``RUN`` steps get no network.
    """
    import docker.errors

    context = Path(context_dir)
    if not (context / dockerfile).is_file():
        raise ImageError(f"no {dockerfile} in {context}; an app build context needs one (FROM a tasknet base)")
    for base in _from_images((context / dockerfile).read_text()):
        if not image_exists(client, base):  # checked here so that Docker never tries to pull it
            raise ImageError(f"{context / dockerfile} builds FROM {base}, which is not on this engine and cannot be "
                             "pulled; build it first (oracle.images.build_busybox_base / build_python_base / "
                             "build_base) or load it with 'docker load'")
    try:
        image, _logs = client.images.build(path=str(context), dockerfile=dockerfile, tag=tag, network_mode="none",
                                           pull=False, rm=True, forcerm=True, buildargs=buildargs or {})
    except docker.errors.BuildError as exc:
        lines = [str(chunk.get("stream") or chunk.get("error") or "").strip() for chunk in exc.build_log]
        tail = " | ".join(line for line in lines if line)[-800:]
        hint = (" — the FROM image is not local: build it first (oracle.images.build_busybox_base / build_base)"
                if "pull access denied" in tail or "not found" in tail or "no such host" in tail else "")
        raise ImageError(f"docker build of {tag} from {context} failed: {exc.msg}{hint}; build log: {tail}") from exc
    except docker.errors.APIError as exc:
        raise ImageError(f"docker build of {tag} from {context} failed: {exc.explanation or exc}") from exc
    log.info("app_image_built", tag=tag, image_id=image.id)
    return str(image.id)


def _from_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile's FROM lines name (not ``scratch``, earlier stages or ARG-built names)."""
    stages: set[str] = set()
    bases: list[str] = []
    for line in dockerfile.splitlines():
        words = line.split()
        if not words or words[0].upper() != "FROM":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if not args:
            continue
        image = args[0]
        if image != "scratch" and image.lower() not in stages and "$" not in image:
            bases.append(image)
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
    return bases


# -- registry ------------------------------------------------------------------------------------
def push_to_registry(client: docker.DockerClient, tag: str, registry_host: str, *,
                     repository: str | None = None) -> str:
    """Push local image ``tag`` to ``registry_host`` (e.g. ``127.0.0.1:5000``); return ``host/repo@sha256:…``.

    The returned reference names the pushed manifest by digest: pull it with :func:`pull_by_digest`.
    """
    import docker.errors

    image = _get(client, tag)
    name, version = _split_tag(tag)
    remote = f"{registry_host}/{repository or name.removeprefix(registry_host + '/')}"
    image.tag(remote, version)
    digest: str | None = None
    try:
        for event in client.api.push(remote, tag=version, stream=True, decode=True):
            if "error" in event:
                raise ImageError(f"push of {tag} to {registry_host} failed: {event['error']}; is the registry "
                                 f"running ('tasknet up' starts one) and reachable at http://{registry_host}/v2/ ?")
            aux = event.get("aux") or {}
            digest = aux.get("Digest", digest)
    except docker.errors.APIError as exc:
        raise ImageError(f"push of {tag} to {registry_host} failed: {exc.explanation or exc}") from exc
    if not digest:
        raise ImageError(f"push of {tag} to {registry_host} reported no manifest digest; check the registry log")
    ref = f"{remote}@{digest}"
    log.info("image_pushed", tag=tag, ref=ref, image_id=image.id)
    return ref


def pull_by_digest(client: docker.DockerClient, ref: str, *, expected_id: str | None = None) -> str:
    """Pull ``host/repo@sha256:…`` (Docker verifies the manifest digest); return the local image id.

    With ``expected_id`` the pulled image id must equal it too (:class:`ImageDigestMismatch` otherwise).
    Already-present images are not pulled again.
    """
    import docker.errors

    repo, sep, digest = ref.rpartition("@")
    if not sep or not _DIGEST_RE.match(digest):
        raise ImageError(f"{ref!r} is not a pinned reference; expected REGISTRY/REPO@sha256:<64 hex> as returned "
                         "by push_to_registry (tags are mutable and never trusted)")
    if not image_exists(client, ref):
        try:
            client.api.pull(repo, tag=digest)
        except docker.errors.NotFound as exc:
            raise ImageError(f"registry has no image {ref}; the app's image was not pushed there or was deleted"
                             ) from exc
        except docker.errors.APIError as exc:
            raise ImageError(f"pull of {ref} failed: {exc.explanation or exc}; is the registry reachable?") from exc
    image_id = verify_image_digest(client, ref, digest)
    if expected_id is not None:
        verify_image_digest(client, ref, expected_id)
    return image_id


def save_image(client: docker.DockerClient, ref: str, dest: str | Path) -> str:
    """Write ``docker save`` of ``ref`` to ``dest`` (an archive to put on IPFS); return the image id."""
    image = _get(client, ref)
    with Path(dest).open("wb") as fh:
        fh.writelines(image.save(named=False))
    return str(image.id)


def load_image(client: docker.DockerClient, archive: str | Path, expected_id: str) -> str:
    """``docker load`` an image archive and check it is ``expected_id``; return the image id.

    The archive is read first (:func:`check_image_archive`): it must hold that one image and no tag, or it is
    refused before the engine sees it — ``docker load`` would otherwise move any tag it names (say, the sandbox's
    holder image) onto an image of the archive's author.
    """
    import docker.errors

    check_image_archive(archive, expected_id)
    try:
        with Path(archive).open("rb") as fh:
            images = client.images.load(fh)
    except docker.errors.APIError as exc:
        raise ImageError(f"docker load of {archive} failed: {exc.explanation or exc}; is it a 'docker save' "
                         "archive?") from exc
    ids = [str(i.id) for i in images]
    if expected_id not in ids:
        raise ImageDigestMismatch(f"image archive {archive} holds {ids or 'no image'} but the app is pinned to "
                                  f"{expected_id}; refuse to run it")
    return expected_id


def check_image_archive(archive: str | Path, expected_id: str) -> None:
    """Refuse a ``docker save`` archive unless its manifest lists exactly the image ``expected_id`` (its config
    blob) and names no tag, and it carries no legacy ``repositories`` tag file."""
    import tarfile

    want = _pinned_digest(expected_id).removeprefix("sha256:")
    try:
        with tarfile.open(archive) as tar:
            names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            member = names.get("manifest.json")
            if member is None or not member.isfile() or member.size > 1 << 20:
                raise ImageError(f"{archive} has no manifest.json; make it with 'docker save' "
                                 "(oracle.images.save_image)")
            manifest = json.loads(_member_bytes(tar, member))
            repos = names.get("repositories")
            legacy = json.loads(_member_bytes(tar, repos) or b"{}") if repos is not None and repos.isfile() \
                and repos.size < 1 << 20 else {}
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ImageError(f"{archive} is not a readable 'docker save' archive ({exc})") from exc
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ImageDigestMismatch(f"image archive {archive} must hold exactly one image (the app's), its manifest "
                                  f"lists {len(manifest) if isinstance(manifest, list) else 'no'} entries")
    entry = manifest[0]
    config = str(entry.get("Config", "")).rsplit("/", 1)[-1].removesuffix(".json")
    if config != want:
        raise ImageDigestMismatch(f"image archive {archive} holds image sha256:{config} but the app is pinned to "
                                  f"sha256:{want}; refuse to load it")
    if entry.get("RepoTags") or legacy:
        raise ImageError(f"image archive {archive} names tags ({entry.get('RepoTags') or list(legacy)}); loading "
                         "it would retag images on this engine: save it untagged (save_image does)")


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The content of a regular-file member (checked by the caller: ``member.isfile()``)."""
    data = tar.extractfile(member)
    if data is None:
        raise ImageError(f"archive member {member.name!r} is not a regular file")
    return data.read()
