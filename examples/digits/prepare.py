"""Regenerate digits_train.npz and digits_test.npz from scikit-learn's digits.

Provenance: scikit-learn ships the UCI "Optical Recognition of Handwritten Digits"
test set (1,797 8x8 images, values 0..16) inside the package
(sklearn/datasets/data/digits.csv.gz); load_digits reads it with no network.
We keep a stratified, seeded 300-image test split and the other 1,497 for training,
stored as uint8 images (N, 1, 8, 8) and uint8 labels (N,).

    pip install scikit-learn && python examples/digits/prepare.py
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
TEST_PER_CLASS = 30


def main() -> None:
    digits = load_digits()
    images = digits.images.astype(np.uint8)[:, None, :, :]
    labels = digits.target.astype(np.uint8)
    rng = np.random.RandomState(0)
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == k))[:TEST_PER_CLASS] for k in range(10)]
    )
    train = np.setdiff1d(np.arange(len(labels)), test)
    train = rng.permutation(train)
    np.savez_compressed(HERE / "digits_train.npz", data=images[train], label=labels[train])
    np.savez_compressed(HERE / "digits_test.npz", data=images[test], label=labels[test])
    print(f"train {len(train)}, test {len(test)} images written to {HERE}")


if __name__ == "__main__":
    main()
