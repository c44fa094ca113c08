"""Resumable verified downloads against a loopback HTTP server serving the fixture archives."""

import hashlib
import subprocess
import sys

import pytest

from data_helpers import FIXTURES, serve
from emcom.data import DataError
from emcom.data.download import fetch

NAME = "byol_celeb_a2.tar.gz"
DATA = (FIXTURES / NAME).read_bytes()
SHA = hashlib.sha256(DATA).hexdigest()


def test_full_download_records_checksum(tmp_path):
    with serve(FIXTURES) as server:
        assert fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz") == SHA
    assert (tmp_path / "a.tar.gz").read_bytes() == DATA
    assert (tmp_path / "a.tar.gz.sha256").read_text() == f"{SHA}  a.tar.gz\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "a.tar.gz.sha256"]


def test_interrupted_download_resumes_with_range(tmp_path):
    dest = tmp_path / "a.tar.gz"
    with serve(FIXTURES, drop_after=len(DATA) // 3) as server:
        assert fetch(f"{server.url}/{NAME}", dest, sha256=SHA.upper(), backoff=0.01) == SHA
        ranges = [h.get("Range") for h in server.requests]
    assert ranges == [None, f"bytes={len(DATA) // 3}-"]
    assert dest.read_bytes() == DATA and not (tmp_path / "a.tar.gz.part").exists()


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path):
    (tmp_path / "a.tar.gz.part").write_bytes(DATA[:1000])
    with serve(FIXTURES) as server:
        fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz", sha256=SHA)
        assert [h.get("Range") for h in server.requests] == ["bytes=1000-"]
    assert (tmp_path / "a.tar.gz").read_bytes() == DATA


def test_server_without_range_support_restarts(tmp_path):
    (tmp_path / "a.tar.gz.part").write_bytes(b"garbage-prefix")
    with serve(FIXTURES, ranges=False) as server:
        fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz", sha256=SHA)
    assert (tmp_path / "a.tar.gz").read_bytes() == DATA


def test_checksum_mismatch_leaves_no_dest(tmp_path):
    with serve(FIXTURES) as server:
        with pytest.raises(DataError, match=rf"sha256 mismatch for .*a.tar.gz: got {SHA}, expected 0+"):
            fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_existing_verified_dest_is_kept_not_refetched(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(DATA)
    with serve(FIXTURES) as server:
        assert fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz", sha256=SHA) == SHA
        assert server.requests == []
        with pytest.raises(DataError, match="exists with sha256"):
            fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz", sha256="1" * 64)
    assert (tmp_path / "a.tar.gz").read_bytes() == DATA  # a verified file is never removed


def test_http_error_and_exhausted_retries(tmp_path):
    with serve(FIXTURES, drop_after=100) as server:
        with pytest.raises(DataError, match="HTTP 404"):
            fetch(f"{server.url}/missing.tar.gz", tmp_path / "m.tar.gz", backoff=0.01)
        server.drop_after = 100
        with pytest.raises(DataError, match="failed after 1 attempts.*kept in"):
            fetch(f"{server.url}/{NAME}", tmp_path / "a.tar.gz", retries=0)
    assert (tmp_path / "a.tar.gz.part").stat().st_size == 100
    assert not (tmp_path / "a.tar.gz").exists()


def test_cli_download(tmp_path):
    with serve(FIXTURES) as server:
        result = subprocess.run([sys.executable, "-m", "emcom.data", "-q", "download",
                                 f"{server.url}/{NAME}", str(tmp_path / "x.tar.gz"), "--sha256",
                                 "f" * 64], capture_output=True, text=True)
    assert result.returncode == 1 and "sha256 mismatch" in result.stderr
    assert list(tmp_path.iterdir()) == []
