"""``tasknet up --ipfs-api-origin``: a web page's origin, written as a browser sends it (kubo compares the
``Origin`` header with its allowed list byte for byte), or a readable refusal before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from tasknet._devnet import UpOptions, web_origin
from tasknet.cli import cli


@pytest.mark.parametrize(("given", "sent"), [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),  # a lone slash: the page's root
    ("HTTP://LocalHost:80", "http://localhost"),  # browsers leave out the default port
    ("https://dapp.example:443/", "https://dapp.example"),
    ("https://dapp.example:8443", "https://dapp.example:8443"),
    ("http://[::1]:8000", "http://[::1]:8000"),
])
def test_an_origin_is_written_as_the_browser_sends_it(given: str, sent: str) -> None:
    assert web_origin(given) == sent
    assert UpOptions(ipfs_api_origins=[given]).ipfs_api_origins == [sent]


@pytest.mark.parametrize(("given", "says"), [
    ("*", "every web page"),
    ("127.0.0.1:8000", "http(s)://host[:port]"),
    ("ftp://127.0.0.1", "http(s)://host[:port]"),
    ("http://", "http(s)://host[:port]"),
    ("http://127.0.0.1:8000/index.html", "has the origin http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/?x=1", "no path, query"),
    ("http://user@127.0.0.1:8000", "user name"),
    ("http://127.0.0.1:99999", "not a web origin"),
])
def test_what_is_not_an_origin_is_refused_with_the_reason(given: str, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        web_origin(given)
    assert says in str(refused.value)
    with pytest.raises(ValidationError):
        UpOptions(ipfs_api_origins=[given])


def test_the_cli_refuses_a_bad_origin_before_starting_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["up", "--devnet-file", f"{tmp_path}/devnet.json", "--ipfs-api-origin",
                                      "http://127.0.0.1:8000", "--ipfs-api-origin", "*"])
    assert result.exit_code == 2
    assert "Invalid value for '--ipfs-api-origin': '*' would let every web page" in result.output
