"""Safe extraction: unsafe members are refused by name and nothing lands outside (or in) the target."""

import io
import re
import tarfile

import pytest

from data_helpers import FIXTURES, files_under
from emcom.data import DataError
from emcom.data.extract import extract


def _tar(path, *members):
    """Writes a .tar.gz with (TarInfo, bytes | None) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"ok"):
    return tarfile.TarInfo(name), data


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name):
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


@pytest.mark.parametrize("member,reason", [
    (_file("/tmp/emcom-absolute.txt"), "absolute path"),
    (_file("data/../../escape.txt"), r"path contains '\.\.'"),
    (_link("data/link", "../../outside", tarfile.SYMTYPE), "points outside"),
    (_link("data/abs", "/etc/passwd", tarfile.SYMTYPE), "points outside"),
    (_link("data/hard", "../outside", tarfile.LNKTYPE), "points outside"),
    (_device("data/null"), "device or FIFO"),
])
def test_unsafe_members_are_refused(tmp_path, member, reason):
    archive = _tar(tmp_path / "evil.tar.gz", _file("data/good.txt"), member)
    target = tmp_path / "target"
    with pytest.raises(DataError, match=rf"evil.tar.gz: unsafe member '{re.escape(member[0].name)}': .*{reason}"):
        extract(archive, target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]  # temp folder removed


def test_safe_archive_with_inside_link(tmp_path):
    archive = _tar(tmp_path / "ok.tar.gz", _file("d/a.txt", b"hello"),
                   _link("d/b.txt", "a.txt", tarfile.SYMTYPE))
    extract(archive, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "b.txt").read_bytes() == b"hello"


def test_fixture_extracts_and_target_must_be_empty(tmp_path):
    extract(FIXTURES / "byol_imagenet2012.tar.gz", tmp_path / "t")
    assert "byol_imagenet2012/1.0.0/dataset_info.json" in files_under(tmp_path / "t")
    with pytest.raises(DataError, match="not an empty folder"):
        extract(FIXTURES / "byol_imagenet2012.tar.gz", tmp_path / "t")
