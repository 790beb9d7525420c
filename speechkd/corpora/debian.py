"""Obtain a Debian package's files without installing it: find or download the .deb, then unpack it."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from speechkd.corpora import CorpusError
from speechkd.paths import speechkd_home

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60


def deb_cache_dir() -> Path:
    return speechkd_home() / "debs"


def find_deb(package: str, search_dirs: Iterable[Path]) -> Path | None:
    """The newest-named `<package>_*.deb` in the first folder that has one, or None."""
    for folder in search_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        candidates = sorted(folder.glob(f"{package}_*.deb"))
        if candidates:
            return candidates[-1]
    return None


def download_deb(package: str, dest_dir: Path) -> Path:
    """Run `apt-get download PACKAGE` in `dest_dir` and return the .deb it wrote."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise CorpusError(
            f"cannot download Debian package {package!r}: apt-get is not available here. "
            f"Download {package}_*.deb elsewhere and pass it with --deb PATH."
        )
    result = subprocess.run(
        ["apt-get", "download", package], cwd=dest_dir, capture_output=True, text=True, check=False
    )
    found = find_deb(package, [dest_dir])
    if result.returncode != 0 or found is None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CorpusError(
            f"`apt-get download {package}` failed in {dest_dir} (exit {result.returncode}): "
            f"{' | '.join(detail) or 'no output'}. Run `apt-get update` (as root) and retry, "
            f"or pass the package file with --deb PATH."
        )
    return found


def obtain_deb(package: str, deb: Path | None = None, search_dirs: Iterable[Path] = ()) -> Path:
    """The .deb for `package`: `deb` if given, else one already downloaded, else `apt-get download`."""
    if deb is not None:
        deb = Path(deb).expanduser()
        if not deb.is_file():
            raise CorpusError(f"Debian package file not found: {deb}")
        return deb
    cache = deb_cache_dir()
    found = find_deb(package, [*search_dirs, Path.cwd(), cache])
    return found if found is not None else download_deb(package, cache)


def extract_deb(deb: Path, dest: Path) -> Path:
    """Unpack the data of `deb` into `dest` (dpkg-deb when present, else pure Python); return `dest`."""
    if not deb.is_file():
        raise CorpusError(f"Debian package file not found: {deb}")
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb") is not None:
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
        if result.returncode != 0:
            said = " | ".join(result.stderr.strip().splitlines()[-2:]) or f"exit {result.returncode}"
            raise CorpusError(f"cannot unpack {deb} (corrupt or truncated?): {said}. Download it again.")
        return dest
    _extract_deb_python(deb, dest)
    return dest


@contextlib.contextmanager
def unpacked_package(
    package: str, deb: Path | None = None, search_dirs: Iterable[Path] = ()
) -> Iterator[Path]:
    """Yield the root of `package`'s unpacked files in a temporary folder under the cache."""
    deb_path = obtain_deb(package, deb, search_dirs)
    tmp_root = speechkd_home() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{package}-", dir=tmp_root) as tmp:
        yield extract_deb(deb_path, Path(tmp))


def _extract_deb_python(deb: Path, dest: Path) -> None:
    """Unpack the `data.tar.*` member of the ar archive `deb` (fallback when dpkg-deb is missing)."""
    member_name, payload = _read_ar_member(deb, prefix="data.tar")
    suffix = member_name.rsplit(".", 1)[-1]
    modes = {"tar": "r:", "gz": "r:gz", "xz": "r:xz", "bz2": "r:bz2"}
    if suffix not in modes:
        raise CorpusError(f"cannot unpack {deb}: its {member_name} needs dpkg-deb (install dpkg)")
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode=modes[suffix]) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(dest, filter="data")
            else:  # Python without extraction filters: refuse unsafe member names ourselves
                for member in archive.getmembers():
                    if member.name.startswith("/") or ".." in Path(member.name).parts:
                        raise CorpusError(f"unsafe path {member.name!r} in {deb}")
                archive.extractall(dest)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorpusError(f"cannot unpack {deb}: corrupt {member_name} ({error})") from error


def _read_ar_member(deb: Path, prefix: str) -> tuple[str, bytes]:
    data = deb.read_bytes()
    if not data.startswith(AR_MAGIC):
        raise CorpusError(f"{deb} is not a Debian package (no ar archive header)")
    pos = len(AR_MAGIC)
    while pos + AR_HEADER_SIZE <= len(data):
        header = data[pos : pos + AR_HEADER_SIZE]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as error:
            raise CorpusError(f"{deb}: corrupt ar member header at byte {pos}") from error
        body = data[pos + AR_HEADER_SIZE : pos + AR_HEADER_SIZE + size]
        if name.startswith(prefix):
            if len(body) != size:
                raise CorpusError(f"{deb}: member {name} is truncated")
            return name, body
        pos += AR_HEADER_SIZE + size + (size % 2)
    raise CorpusError(f"{deb}: no {prefix}* member (not a Debian binary package?)")
