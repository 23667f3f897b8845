import shutil

import pytest
import torch

from qtrain_qiskit.data import DATA_DIR_ENV, DataError, load_dataset, resolve_data_dir, train_val_split

from .conftest import make_fake_mnist


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    root = make_fake_mnist(tmp_path_factory.mktemp("data"), n_train=200, n_test=50)
    shutil.copytree(root / "MNIST", root / "FashionMNIST")  # same IDX layout, other folder
    return root


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_load_generated_idx_files(fake_root, name):
    train = load_dataset(name, fake_root, train=True)
    test = load_dataset(name, fake_root, train=False)
    assert train.images.shape == (200, 1, 28, 28) and train.images.dtype == torch.uint8
    assert len(test) == 50 and train.labels.dtype == torch.int64


def test_batches_are_normalized_and_resumable(fake_root):
    data = load_dataset("mnist", fake_root, train=True)
    x, y = next(data.batches(32, torch.device("cpu")))
    expected = (data.images[:32].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, data.labels[:32])
    full = list(data.batches(32, torch.device("cpu"), torch.Generator().manual_seed(1)))
    tail = list(data.batches(32, torch.device("cpu"), torch.Generator().manual_seed(1), skip=3))
    assert len(full) == 7 and len(tail) == 4 and len(full[-1][1]) == 200 - 6 * 32
    for (xa, ya), (xb, yb) in zip(full[3:], tail, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_split_is_fixed_by_seed_and_disjoint(fake_root):
    data = load_dataset("mnist", fake_root, train=True)
    data.images = torch.arange(200, dtype=torch.uint8).view(200, 1, 1, 1).expand(200, 1, 28, 28).clone()
    train, val = train_val_split(data, 0.2, seed=0)
    again, _ = train_val_split(data, 0.2, seed=0)
    other, _ = train_val_split(data, 0.2, seed=1)
    ids = lambda d: d.images[:, 0, 0, 0].tolist()  # noqa: E731
    assert (len(train), len(val)) == (160, 40)
    assert not set(ids(train)) & set(ids(val)) and ids(train) == ids(again) and ids(train) != ids(other)
    subset, val_too = train_val_split(data, 0.2, seed=0, train_subset=10)
    assert ids(subset) == ids(train)[:10] and ids(val_too) == ids(val)


def test_data_root_resolution(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert str(resolve_data_dir(None)) == "data"
    monkeypatch.setenv(DATA_DIR_ENV, "/somewhere")
    assert str(resolve_data_dir(None)) == "/somewhere"
    assert str(resolve_data_dir("/flag")) == "/flag"


def test_missing_data_offline_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"mnist test split not found under .* pass --data-dir or set QTRAIN_DATA_DIR"):
        load_dataset("mnist", tmp_path, train=False, download=False)
