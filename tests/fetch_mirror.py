"""A mirror of the paper's published data files, in their exact distributed formats, served over HTTP on 127.0.0.1.

:func:`write_mirror` packs the format-exact fixture data root of :mod:`tests.paper_data` the way each source
publishes it (CIFAR's ``cifar-10-python.tar.gz`` with ``cifar-10-batches-py/`` inside, SVHN's ``test_32x32.mat``,
DTD's ``dtd-r1.0.1.tar.gz`` with ``dtd/images/<class>/``, Places365's ``val_256.tar`` with
``val_256/Places365_val_NNNNNNNN.jpg``, ODIN's ``LSUN.tar.gz`` / ``LSUN_resize.tar.gz`` / ``iSUN.tar.gz``, the 300K
``.npy``) and returns the md5s the tests pin in torchvision's tables.  :class:`MirrorServer` serves the folder with
``http.server`` in a thread, logs every request, and can cut a transfer off halfway.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from pathlib import Path

from tests.paper_data import write_paper_data_root

PLACES_NAMES = [f"Places365_val_{i:08d}.jpg" for i in (2, 6, 11, 40, 41)]   # the fixture's "subset"
PLACES_OTHERS = [f"Places365_val_{i:08d}.jpg" for i in (1, 3)]             # in the archive, not in the subset


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _tar(path: Path, members: dict[str, Path | bytes]) -> None:
    """A tar (gzipped for .gz) holding ``members``: archive name -> file (or bytes)."""
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, src in members.items():
            data = src if isinstance(src, bytes) else src.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _tree(folder: Path, prefix: str) -> dict[str, Path]:
    return {f"{prefix}/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*")) if p.is_file()}


def write_mirror(mirror: Path, work: Path) -> dict:
    """Write the published files into ``mirror``; returns ``{"md5": {filename: md5}, "checksums": path}`` (the
    md5s of the archives, and the fixture's ``checksums.json`` of the files inside them)."""
    mirror.mkdir(parents=True, exist_ok=True)
    data = work / "source"
    checksums = write_paper_data_root(data, n=8)
    _tar(mirror / "cifar-10-python.tar.gz", _tree(data / "cifar-10-batches-py", "cifar-10-batches-py"))
    _tar(mirror / "cifar-100-python.tar.gz", _tree(data / "cifar-100-python", "cifar-100-python"))
    shutil.copyfile(data / "svhn" / "test_32x32.mat", mirror / "test_32x32.mat")
    _tar(mirror / "dtd-r1.0.1.tar.gz", {**_tree(data / "dtd", "dtd"), "dtd/labels/labels_joint_anno.txt": b"x\n"})
    places = sorted(p for p in (data / "places365").rglob("*.jpg"))
    _tar(mirror / "val_256.tar", {f"val_256/{name}": places[i % len(places)]
                                  for i, name in enumerate(PLACES_NAMES + PLACES_OTHERS)})
    lsun = _tree(data / "lsun", "x")
    _tar(mirror / "LSUN.tar.gz", {f"LSUN/test/{Path(k).name}": v for k, v in lsun.items()})
    _tar(mirror / "LSUN_resize.tar.gz", {f"LSUN_resize/LSUN_resize/{Path(k).name}": v for k, v in lsun.items()})
    isun = _tree(data / "isun", "x")
    _tar(mirror / "iSUN.tar.gz", {f"iSUN/iSUN_patches/{Path(k).stem}.jpeg": v for k, v in isun.items()})
    shutil.copyfile(data / "300K_random_images.npy", mirror / "300K_random_images.npy")
    return {"md5": {p.name: _md5(p) for p in mirror.iterdir()}, "checksums": checksums}


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, request, client_address, server):
        super().__init__(request, client_address, server, directory=str(server.folder))

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.requests.append(path)
        name = path.rsplit("/", 1)[-1]
        prefix = self.server.prefix
        if not path.startswith(prefix):
            self.send_error(404)
            return
        self.path = "/" + path[len(prefix):]
        if name in self.server.cut:   # send the headers of the whole file, half of its bytes, then hang up
            self.server.cut.discard(name)
            data = (self.server.folder / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class MirrorServer:
    """``with MirrorServer(folder, prefix="/pub/") as srv:`` serves ``folder`` at ``srv.url`` (which ends in
    ``prefix``); ``srv.requests`` lists the paths asked for; ``srv.cut.add(name)`` cuts the next transfer of
    ``name`` off halfway."""

    def __init__(self, folder: Path, prefix: str = "/"):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.folder = Path(folder)
        self.httpd.prefix = prefix
        self.httpd.requests = []
        self.httpd.cut = set()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{prefix}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    @property
    def cut(self) -> set:
        return self.httpd.cut

    def __enter__(self) -> "MirrorServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
