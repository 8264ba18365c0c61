"""pipeline.packages.unpack: each rule proved with an archive crafted in the test."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.packages.unpack import Limits, UnpackError, unpack


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
         mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return path


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if name.endswith("/"):
        info.type = tarfile.DIRTYPE
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def _zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _rejected(archive: Path, folder: Path, limits: Limits | None = None) -> str:
    with pytest.raises(UnpackError) as error:
        unpack(archive, folder, limits or Limits())
    assert not folder.exists()
    return str(error.value)


def test_unpack_tar_gz(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "app.tar.gz", [
        (_file("app/", 0o755), None),
        (_file("app/bin/run", 0o4755), b"#!/bin/sh\necho run\n"),
        (_file("./app/VERSION"), b"1.4.2\n"),
        (_link("app/current", "bin/run"), None),
        (_link("app/copy", "app/VERSION", tarfile.LNKTYPE), None),
    ])
    folder = tmp_path / "out"

    count = unpack(archive, folder)

    assert count == 5
    assert (folder / "app/VERSION").read_text() == "1.4.2\n"
    assert stat.S_IMODE((folder / "app/bin/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "app/VERSION").stat().st_mode) == 0o644
    assert (folder / "app/current").readlink() == Path("bin/run")
    assert (folder / "app/copy").read_text() == "1.4.2\n"


def test_unpack_zip(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "app.zip", [
        ("app/VERSION", b"1.4.2\n"),
        ("app/static/", b""),
        _zip_symlink("app/latest", "VERSION"),
    ])
    folder = tmp_path / "out"

    assert unpack(archive, folder) == 3
    assert (folder / "app/VERSION").read_text() == "1.4.2\n"
    assert (folder / "app/static").is_dir()
    assert (folder / "app/latest").read_text() == "1.4.2\n"


def test_unpack_uncompressed_tar(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "app.tar", [(_file("VERSION"), b"1.4.2\n")], mode="w")

    assert unpack(archive, tmp_path / "out") == 1


@pytest.mark.parametrize("name", ["/etc/passwd", "\\windows\\x", "C:/x"])
def test_unpack_tar_absolute_path(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(_file(name), b"x")])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member '{name}': absolute path; only relative names are allowed"
    )


def test_unpack_zip_absolute_path(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("placeholder")
    info.filename = "/etc/cron.d/evil"
    archive = _zip(tmp_path / "bad.zip", [(info, b"x")])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member '/etc/cron.d/evil': absolute path; only relative names are allowed"
    )


@pytest.mark.parametrize("name", ["../evil", "app/../../evil", "app/..", "a\\..\\..\\evil"])
def test_unpack_tar_dot_dot(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(_file(name), b"x")])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member '{name}': '..' in the path; names must stay inside the folder"
    )
    assert not (tmp_path / "evil").exists()


def test_unpack_zip_dot_dot(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bad.zip", [("ok", b"fine"), ("../../evil", b"x")])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member '../../evil': '..' in the path; names must stay inside the folder"
    )


@pytest.mark.parametrize(
    ("name", "target", "reason"),
    [
        ("link", "/etc/passwd", "symbolic link to the absolute path '/etc/passwd'"),
        ("link", "../outside", "symbolic link to '../outside', outside the folder"),
        ("app/link", "../../outside", "symbolic link to '../../outside', outside the folder"),
        ("app/link", "sub/../../..", "symbolic link to 'sub/../../..', outside the folder"),
    ],
)
def test_unpack_tar_symlink_outside(tmp_path: Path, name: str, target: str,
                                    reason: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(_link(name, target), None)])

    assert _rejected(archive, tmp_path / "out") == f"{archive}: member '{name}': {reason}"


def test_unpack_zip_symlink_outside(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bad.zip", [_zip_symlink("link", "../../etc")])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member 'link': symbolic link to '../../etc', outside the folder"
    )


def test_unpack_tar_link_then_write_through(tmp_path: Path) -> None:
    # The link is checked and allowed, but a later member with the same name cannot
    # replace it with one that points outside.
    archive = _tar(tmp_path / "bad.tar.gz", [
        (_link("dir", "."), None),
        (_link("dir", "/tmp"), None),
    ])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member 'dir': appears twice in the archive"
    )


def test_unpack_tar_hard_link_outside(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [(_link("copy", "../../etc/shadow",
                                                    tarfile.LNKTYPE), None)])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member 'copy': hard link to '../../etc/shadow', outside the folder"
    )


@pytest.mark.parametrize(
    "kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE],
)
def test_unpack_tar_device_file(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("dev/null")
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    archive = _tar(tmp_path / "bad.tar.gz", [(info, None)])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member 'dev/null': device file, FIFO or other special file"
    )


def test_unpack_zip_device_file(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("dev/sda")
    info.create_system = 3
    info.external_attr = (stat.S_IFBLK | 0o600) << 16
    archive = _zip(tmp_path / "bad.zip", [(info, b"")])

    assert _rejected(archive, tmp_path / "out") == (
        f"{archive}: member 'dev/sda': device file, FIFO or other special file"
    )


def test_unpack_tar_member_too_large(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bomb.tar.gz", [(_file("big"), bytes(3000))])

    assert _rejected(archive, tmp_path / "out", Limits(max_member_size=2048)) == (
        f"{archive}: member 'big': larger than 2048 bytes (max_member_size)"
    )


def test_unpack_zip_member_too_large(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big", bytes(5 << 20))

    assert _rejected(tmp_path / "bomb.zip", tmp_path / "out",
                     Limits(max_member_size=2 << 20)) == (
        f"{tmp_path}/bomb.zip: member 'big': larger than 2097152 bytes (max_member_size)"
    )


def test_unpack_zip_size_understated_in_header(tmp_path: Path) -> None:
    # The headers claim 10 bytes while the data inflates to 5 MiB. zipfile reads only
    # the stated size, and the CRC of those bytes fails.
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big", bytes(5 << 20))
    data = bytearray(path.read_bytes())
    for offset in (22, data.rindex(b"PK\x01\x02") + 24):
        data[offset:offset + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    assert _rejected(path, tmp_path / "out", Limits(max_member_size=1 << 20)) == (
        f"{path}: damaged archive: Bad CRC-32 for file 'big'"
    )


def test_unpack_total_too_large(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bomb.tar.gz", [
        (_file(f"part{index}"), bytes(1000)) for index in range(5)
    ])

    assert _rejected(archive, tmp_path / "out", Limits(max_total_size=3500)) == (
        f"{archive}: member 'part3': the archive unpacks to more than 3500 bytes "
        "(max_total_size)"
    )


def test_unpack_too_many_members(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "many.tar.gz", [(_file(f"f{index}"), b"") for index in range(4)])

    assert _rejected(archive, tmp_path / "out", Limits(max_members=3)) == (
        f"{archive}: more than 3 members (max_members); the archive is rejected"
    )


def test_unpack_zip_encrypted_member(tmp_path: Path) -> None:
    path = _zip(tmp_path / "secret.zip", [("secret", b"x")])
    data = bytearray(path.read_bytes())
    data[6] |= 1
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 1
    path.write_bytes(bytes(data))

    assert _rejected(path, tmp_path / "out") == (
        f"{path}: member 'secret': encrypted zip member; encrypt the package with age instead"
    )


def test_unpack_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"just text, no archive")

    assert _rejected(path, tmp_path / "out") == (
        f"{path}: not a tar or zip archive (file could not be opened successfully)"
    )


def test_unpack_truncated_tar(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "app.tar.gz", [(_file("big"), os.urandom(100_000))])
    archive.write_bytes(archive.read_bytes()[:50_000])

    assert _rejected(archive, tmp_path / "out").startswith(f"{archive}: damaged archive: ")


def test_unpack_folder_not_empty(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "app.tar.gz", [(_file("VERSION"), b"1")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("keep")

    with pytest.raises(UnpackError) as error:
        unpack(archive, tmp_path / "out")
    assert str(error.value) == f"{tmp_path}/out: the unpack folder must be empty or not exist"
    assert (tmp_path / "out" / "keep").read_text() == "keep"


def test_unpack_removes_partial_output(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [
        (_file("good"), b"fine"),
        (_file("../evil"), b"x"),
    ])

    _rejected(archive, tmp_path / "out")

    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.tar.gz"]
