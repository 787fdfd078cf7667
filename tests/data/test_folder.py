"""Image folders written by the test: layouts, resizing, archives, the decode cache, bad files, and
where ``cifar10-jpeg`` is looked for (a miniature archive or tree the test writes)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unsup.cli import main
from unsup.data import download, folder, load
from unsup.data.cifar import CLASSES as CIFAR10_CLASSES
from unsup.errors import ConfigError, DataError


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def class_tree(root: Path, per_class: int = 5) -> None:
    """Class ``b`` red PNGs, class ``a`` green JPEGs (so sorting, not creation, numbers them)."""
    for i in range(per_class):
        write_image(root / "b" / f"{i}.png", (255, 0, 0))
        write_image(root / "a" / "nested" / f"{i}.jpg", (0, 255, 0), size=(20, 16))


def test_class_folders(tmp_path: Path) -> None:
    class_tree(tmp_path / "imgs")
    name = f"image-folder:{tmp_path / 'imgs'}"
    test = load(name, "test", size=8)
    assert test.x.shape == (2, 3, 8, 8) and test.spec.levels == 256 and test.spec.num_classes == 2
    assert test.class_names == ["a", "b"]
    train = load(name, "train", size=8, val_fraction=0.25)
    val = load(name, "val", size=8, val_fraction=0.25)
    assert len(train) + len(val) + len(test) == 10 and len(val) == 2
    for ds in (train, test):
        for x, y in zip(ds.x, ds.y, strict=True):
            red = int(x[0].float().mean()) > 200
            assert red == (y == 1)  # b (red) is class 1
    # the test split is fixed: independent of the run's seed
    assert torch.equal(load(name, "test", size=8, seed=5).x, test.x)


def test_grey_channel_option(tmp_path: Path) -> None:
    class_tree(tmp_path)
    ds = load(f"image-folder:{tmp_path}", "train", size=6, channels=1)
    assert ds.x.shape[1:] == (1, 6, 6)
    with pytest.raises(ConfigError, match="channels=2"):
        load(f"image-folder:{tmp_path}", "train", channels=2)


def test_resize_shorter_side_then_centre_crop(tmp_path: Path) -> None:
    im = np.zeros((20, 40, 3), dtype=np.uint8)  # H=20, W=40: left 10 and right 10 columns white
    im[:, :10] = 255
    im[:, 30:] = 255
    Image.fromarray(im).save(tmp_path / "wide.png")
    Image.fromarray(im).save(tmp_path / "wide2.png")
    x = load(f"image-folder:{tmp_path}", "test", size=10).x[0, 0]
    # 40x20 -> 20x10, then the centre 10 columns: all from the black middle.
    assert x.shape == (10, 10) and int(x.max()) < 40


def test_unlabelled(tmp_path: Path) -> None:
    for i in range(5):
        write_image(tmp_path / f"{i}.png", (i * 50, 0, 0))
    ds = load(f"image-folder:{tmp_path}", "train", size=4)
    assert ds.y is None and ds.spec.num_classes is None and ds.class_names is None


def test_train_test_subdirs(tmp_path: Path) -> None:
    class_tree(tmp_path / "train", per_class=3)
    write_image(tmp_path / "test" / "b" / "x.png", (255, 0, 0))
    name = f"image-folder:{tmp_path}"
    test = load(name, "test", size=4)
    assert len(test) == 1 and test.y.tolist() == [1] and test.class_names == ["a", "b"]
    assert len(load(name, "train", size=4)) + len(load(name, "val", size=4)) == 6
    write_image(tmp_path / "test" / "c" / "y.png", (0, 0, 255))
    with pytest.raises(DataError, match="class 'c' does not occur in the training split"):
        load(name, "test", size=4)


def test_tar_gz_matches_directory(tmp_path: Path, isolated_cache: Path) -> None:
    class_tree(tmp_path / "tree" / "train")
    class_tree(tmp_path / "tree" / "test", per_class=1)
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="tree")  # one top-level folder, like cifar10-jpeg
    from_dir = load(f"image-folder:{tmp_path / 'tree'}", "train", size=8)
    from_tar = load(f"image-folder:{archive}", "train", size=8)
    assert torch.equal(from_dir.x, from_tar.x) and torch.equal(from_dir.y, from_tar.y)
    assert len(load(f"image-folder:{archive}", "test", size=8)) == 2
    cached = sorted(p.suffix for p in (isolated_cache / "image-folder").iterdir())
    assert cached == [".json", ".json", ".npy", ".npy"]  # one tree, one archive; nothing extracted


def add_to_tar(archive: Path, name: str, data: bytes) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_archive_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    add_to_tar(bad, "../evil.png", b"x")
    with pytest.raises(DataError, match="unsafe member name '../evil.png'"):
        load(f"image-folder:{bad}")
    add_to_tar(bad, "top/a/broken.jpg", b"not a jpeg")
    with pytest.raises(DataError, match=r"bad\.tar\.gz:top/a/broken\.jpg: cannot read"):
        load(f"image-folder:{bad}")
    class_tree(tmp_path / "tree", per_class=20)
    cut = tmp_path / "cut.tar.gz"
    with tarfile.open(cut, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="tree")
    cut.write_bytes(cut.read_bytes()[:-300])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load(f"image-folder:{cut}")


def test_decoded_arrays_are_cached_as_npy(tmp_path: Path, isolated_cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    class_tree(tmp_path / "imgs")
    name = f"image-folder:{tmp_path / 'imgs'}"
    first = load(name, "train", size=8)
    cached = list((isolated_cache / "image-folder").glob("*.npy"))
    assert len(cached) == 1 and np.load(cached[0], allow_pickle=False).dtype == np.uint8

    def no_decoding(*args: object) -> np.ndarray:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(folder, "decode_image", no_decoding)
    assert torch.equal(load(name, "train", size=8).x, first.x)
    write_image(tmp_path / "imgs" / "a" / "new.png", (0, 0, 0))  # a changed tree decodes again
    with pytest.raises(AssertionError, match="decoded although cached"):
        load(name, "train", size=8)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    class_tree(tmp_path)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=r"broken\.jpg: cannot read this image"):
        load(f"image-folder:{tmp_path}", "train")


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(f"image-folder:{tmp_path / 'absent'}")
    class_tree(tmp_path)
    write_image(tmp_path / "loose.png", (0, 0, 0))
    with pytest.raises(DataError, match="holds both images"):
        load(f"image-folder:{tmp_path}")
    (tmp_path / "loose.png").unlink()
    (tmp_path / "empty").mkdir()  # a folder without images is no class
    assert load(f"image-folder:{tmp_path}", "test").class_names == ["a", "b"]
    (tmp_path / "notes.txt").write_text("not an image")
    assert load(f"image-folder:{tmp_path}", "test").class_names == ["a", "b"]
    (tmp_path / "x" / "y").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load(f"image-folder:{tmp_path / 'x'}")


def cifar_tree(root: Path) -> Path:
    """A miniature ``cifar10-jpeg`` tree: the ten CIFAR-10 classes, 2 train and 1 test JPEG each."""
    for c, name in enumerate(CIFAR10_CLASSES):
        for split, n in (("train", 2), ("test", 1)):
            for i in range(n):
                write_image(root / split / name / f"{i:04d}.jpg", (25 * c, 0, 0), size=(8, 8))
    return root


def cifar_archive(path: Path, tmp_path: Path) -> str:
    """Pack :func:`cifar_tree` at ``path`` like the real archive (one top folder); its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(cifar_tree(tmp_path / "made" / "cifar10-jpeg"), arcname="cifar10-jpeg")
    return download.sha256sum(path)


def test_cifar10_jpeg_missing_says_what_it_is_and_how_to_give_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A shared/ beside the working directory and $UNSUP_SHARED are never looked at.
    shared = tmp_path / "shared" / "data" / "cifar10-jpeg"
    monkeypatch.setattr(folder, "CIFAR10_JPEG_SHA256", cifar_archive(shared / "cifar10-jpeg.tar.gz",
                                                                     tmp_path))
    cifar_tree(shared / "cifar10-jpeg")
    monkeypatch.setenv("UNSUP_SHARED", str(tmp_path / "shared"))
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (None, empty):
        with pytest.raises(DataError) as e:
            load("cifar10-jpeg", root=root)
        msg = str(e.value)
        assert msg.startswith("cifar10-jpeg: neither cifar10-jpeg.tar.gz nor an extracted tree")
        assert "The dataset is a local JPEG re-encoding of CIFAR-10" in msg
        assert "give its directory with --data-dir DIR or $UNSUP_DATA" in msg
        assert msg.endswith("For the real CIFAR-10, use --data cifar10 --download")
        assert "shared" not in msg
    assert f"found in {empty}, {empty / 'cifar10-jpeg'}, " in msg


@pytest.mark.parametrize("where", ["root", "root/cifar10-jpeg", "$UNSUP_DATA"])
def test_cifar10_jpeg_archive_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              where: str) -> None:
    root = tmp_path / "data"
    archive = root / ("cifar10-jpeg" if where == "root/cifar10-jpeg" else "") / "cifar10-jpeg.tar.gz"
    monkeypatch.setattr(folder, "CIFAR10_JPEG_SHA256", cifar_archive(archive, tmp_path))
    if where == "$UNSUP_DATA":
        monkeypatch.setenv("UNSUP_DATA", str(root))
    test = load("cifar10-jpeg", "test", root=None if where == "$UNSUP_DATA" else root, size=4)
    assert test.x.shape == (10, 3, 4, 4) and test.class_names == CIFAR10_CLASSES
    assert test.y.tolist() == list(range(10))
    assert len(load("cifar10-jpeg", "train", root=root, size=4, val_fraction=0.25)) == 15


def test_cifar10_jpeg_by_data_dir_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    monkeypatch.setattr(folder, "CIFAR10_JPEG_SHA256", cifar_archive(root / "cifar10-jpeg.tar.gz", tmp_path))
    out = tmp_path / "run"
    code = main(["train", "made", "--data", "cifar10-jpeg", "--data-dir", str(root), "--data-opt",
                 "size=2", "--represent", "binary", "--hidden", "8", "--steps", "1", "--eval-every", "0",
                 "--samples", "0", "--no-progress", "--no-tensorboard", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "test.json").is_file()


def test_cifar10_jpeg_extracted_tree(tmp_path: Path) -> None:
    root = tmp_path / "data"
    cifar_tree(root / "cifar10-jpeg")
    for data_dir in (root, root / "cifar10-jpeg"):
        test = load("cifar10-jpeg", "test", root=data_dir, size=4)
        assert len(test) == 10 and test.class_names == CIFAR10_CLASSES
    # train/ and test/ with other classes are somebody else's images, not cifar10-jpeg
    class_tree(tmp_path / "other" / "train")
    class_tree(tmp_path / "other" / "test", per_class=1)
    with pytest.raises(DataError, match="local JPEG re-encoding of CIFAR-10"):
        load("cifar10-jpeg", root=tmp_path / "other")


def test_cifar10_jpeg_checksum(tmp_path: Path) -> None:
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match=rf"cifar10-jpeg\.tar\.gz: checksum mismatch: expected sha256 "
                                        rf"{folder.CIFAR10_JPEG_SHA256}"):
        load("cifar10-jpeg", root=tmp_path)
