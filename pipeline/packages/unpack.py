"""Unpack a tar or zip package into an empty folder, rejecting what could escape it.

Every member is checked before anything of it is written, and the whole archive is
rejected at the first bad member. Rejected:

- absolute names (``/etc/passwd``, ``C:\\x``, ``\\\\server\\share``) and names with a
  ``..`` component;
- symbolic links whose target is absolute or, resolved from the link's own folder,
  lies outside the target folder, and hard links to a name outside it;
- device files, FIFOs and other special files;
- a name that appears twice, since the second could replace a checked link;
- more than ``max_members`` members, a member larger than ``max_member_size`` bytes,
  and more than ``max_total_size`` bytes in all. Sizes are counted on the bytes
  actually written, because a zip header can state a smaller size than its data.

Files get mode 0644, or 0755 when the owner could execute them; set-user-ID,
set-group-ID and sticky bits are dropped, and owners are not restored. The parent
folder of every file is resolved with ``os.path.realpath`` and must still be inside
the target folder when the file is written.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode

logger = logging.getLogger("shipline")

#: Defaults of :class:`Limits`. They bound what a hostile archive can make shipline
#: write, and are meant to be raised with the step's options for larger packages.
DEFAULT_MAX_MEMBER_SIZE = 1 << 30
DEFAULT_MAX_TOTAL_SIZE = 4 << 30
DEFAULT_MAX_MEMBERS = 100_000
_COPY_CHUNK = 1 << 20


class UnpackError(ShiplineError):
    """An archive that is malformed or has a member that is not allowed."""

    exit_code = ExitCode.BLOCKED


@dataclass(frozen=True)
class Limits:
    """Bounds on what one archive may contain, in bytes and members."""

    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE
    max_members: int = DEFAULT_MAX_MEMBERS


@dataclass(frozen=True)
class Member:
    """One archive entry in a form common to tar and zip."""

    name: str
    #: "file", "dir", "symlink", "hardlink", "special" or "encrypted" (zip only).
    kind: str
    mode: int
    link: str = ""


def unpack(archive: Path, folder: Path, limits: Limits = Limits()) -> int:
    """Unpack the tar (optionally compressed) or zip file ``archive`` into ``folder``.

    ``folder`` is created and must not exist or be empty. Returns the number of
    members unpacked. Raises :class:`UnpackError` naming the archive and the member;
    what was unpacked before the error is removed again.
    """
    _prepare_folder(folder)
    try:
        count = _unpack_into(archive, folder, limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    logger.info("unpacked %d members of %s into %s", count, archive, folder)
    return count


def _unpack_into(archive: Path, folder: Path, limits: Limits) -> int:
    writer = _Writer(archive, folder, limits)
    try:
        if zipfile.is_zipfile(archive):
            _unpack_zip(archive, writer)
        else:
            _unpack_tar(archive, writer)
    except (tarfile.TarError, EOFError, zipfile.BadZipFile) as exc:
        raise UnpackError(f"{archive}: damaged archive: {exc}") from None
    return writer.count


def _unpack_zip(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as source:
        for info in source.infolist():
            member = _zip_member(source, info)
            writer.check(member)
            if member.kind == "file":
                with source.open(info) as stream:
                    writer.write_file(member, stream)
            else:
                writer.write_other(member)


def _unpack_tar(archive: Path, writer: _Writer) -> None:
    try:
        source = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        # Python 3.12 and later list each compression tarfile tried, one line each,
        # after the first line; those lines say nothing the first does not.
        reason = str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__
        raise UnpackError(f"{archive}: not a tar or zip archive ({reason})") from None
    with source:
        for info in source:
            member = _tar_member(info)
            writer.check(member)
            if member.kind == "file":
                stream = source.extractfile(info)
                assert stream is not None
                with stream:
                    writer.write_file(member, stream)
            else:
                writer.write_other(member)


class _Writer:
    """Checks members against the rules and writes them below the folder."""

    def __init__(self, archive: Path, folder: Path, limits: Limits) -> None:
        self.archive = archive
        self.folder = folder
        self.root = os.path.realpath(folder)
        self.limits = limits
        self.seen: set[str] = set()
        self.count = 0
        self.total = 0

    def fail(self, member: Member | str, reason: str) -> UnpackError:
        name = member.name if isinstance(member, Member) else member
        return UnpackError(f"{self.archive}: member '{name}': {reason}")

    def check(self, member: Member) -> None:
        self.count += 1
        if self.count > self.limits.max_members:
            raise UnpackError(
                f"{self.archive}: more than {self.limits.max_members} members "
                "(max_members); the archive is rejected"
            )
        relative = _relative_name(member.name)
        if relative is None:
            raise self.fail(member, "absolute path; only relative names are allowed")
        if ".." in relative.split("/"):
            raise self.fail(member, "'..' in the path; names must stay inside the folder")
        if relative in self.seen:
            raise self.fail(member, "appears twice in the archive")
        self.seen.add(relative)
        if member.kind == "special":
            raise self.fail(member, "device file, FIFO or other special file")
        if member.kind == "encrypted":
            raise self.fail(member, "encrypted zip member; encrypt the package with age instead")
        if member.kind == "symlink":
            self._check_symlink(member, relative)
        if member.kind == "hardlink":
            target = _relative_name(member.link)
            if target is None or ".." in target.split("/"):
                raise self.fail(member, f"hard link to '{member.link}', outside the folder")

    def _check_symlink(self, member: Member, relative: str) -> None:
        if member.link.startswith(("/", "\\")) or _has_drive(member.link):
            raise self.fail(member, f"symbolic link to the absolute path '{member.link}'")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), member.link))
        if resolved == ".." or resolved.startswith("../"):
            raise self.fail(member, f"symbolic link to '{member.link}', outside the folder")

    def path_of(self, member: Member) -> Path:
        relative = _relative_name(member.name)
        assert relative is not None
        path = self.folder / relative
        parent = os.path.realpath(path.parent)
        if parent != self.root and not parent.startswith(self.root + os.sep):
            raise self.fail(member, "its folder resolves outside the target folder")
        return path

    def write_file(self, member: Member, stream: IO[bytes]) -> None:
        try:
            self._write_file(member, stream)
        except OSError as exc:
            raise self.fail(member, f"cannot be written: {exc.strerror}") from None

    def _write_file(self, member: Member, stream: IO[bytes]) -> None:
        path = self.path_of(member)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path_of(member)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        mode = 0o755 if member.mode & stat.S_IXUSR else 0o644
        with os.fdopen(os.open(path, flags, mode), "wb") as output:
            written = 0
            while chunk := stream.read(_COPY_CHUNK):
                written += len(chunk)
                self.total += len(chunk)
                if written > self.limits.max_member_size:
                    raise self.fail(member, f"larger than {self.limits.max_member_size} bytes "
                                    "(max_member_size)")
                if self.total > self.limits.max_total_size:
                    raise self.fail(member, f"the archive unpacks to more than "
                                    f"{self.limits.max_total_size} bytes (max_total_size)")
                output.write(chunk)

    def write_other(self, member: Member) -> None:
        try:
            self._write_other(member)
        except OSError as exc:
            raise self.fail(member, f"cannot be written: {exc.strerror}") from None

    def _write_other(self, member: Member) -> None:
        link = member.link
        path = self.path_of(member)
        if member.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path_of(member)
        if member.kind == "symlink":
            os.symlink(link, path)
            return
        target = self.folder / (_relative_name(link) or "")
        if not target.is_file() or target.is_symlink():
            raise self.fail(member, f"hard link to '{link}', which is not a file unpacked "
                            "before it")
        shutil.copyfile(target, path)
        os.chmod(path, 0o755 if member.mode & stat.S_IXUSR else 0o644)


def _relative_name(name: str) -> str | None:
    """Return ``name`` without ``./`` prefixes and trailing slashes; None if absolute."""
    if name.startswith(("/", "\\")) or _has_drive(name):
        return None
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    return "/".join(parts) or "."


def _has_drive(name: str) -> bool:
    return len(name) >= 2 and name[1] == ":" and name[0].isalpha()


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    else:
        kind = "special"
    return Member(info.name, kind, info.mode, info.linkname)


def _zip_member(source: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    if info.flag_bits & 0x1:
        return Member(info.filename, "encrypted", mode)
    if info.is_dir():
        return Member(info.filename, "dir", mode)
    if stat.S_ISLNK(mode):
        # A zip stores a symbolic link's target as the entry's data.
        if info.file_size > 4096:
            return Member(info.filename, "special", mode)
        return Member(info.filename, "symlink", mode, source.read(info).decode("utf-8", "replace"))
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return Member(info.filename, "special", mode)
    return Member(info.filename, "file", mode)


def _prepare_folder(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UnpackError(f"{folder}: the unpack folder must be empty or not exist")
    folder.mkdir(parents=True, exist_ok=True)
