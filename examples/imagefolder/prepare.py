"""Turn the digits example's arrays into what a classic Caffe project starts from: a
folder of PNG images and Caffe's list files (`train.txt`, `val.txt`: "path label" per line).

Runs in the image (scikit-image writes the PNGs): caffebox python examples/imagefolder/prepare.py
Also writes val_images.npy / val_labels.npy (the first 100 validation images as classify.py
takes an .npy: H x W x 3 floats in [0, 1]) for checking its predictions.
"""

from pathlib import Path

import numpy as np
import skimage.io

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "digits"


def write(split: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = np.load(DIGITS / source)
    images = arrays["data"][:, 0] * 15  # 8x8, values 0..16 -> 0..240
    labels = arrays["label"]
    folder = HERE / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    rgb = np.repeat(images[..., None], 3, axis=-1).astype(np.uint8)
    for i, (image, label) in enumerate(zip(rgb, labels)):
        name = f"{split}/{i:04d}.png"
        skimage.io.imsave(HERE / "images" / name, image, check_contrast=False)
        lines.append(f"{name} {int(label)}\n")
    (HERE / f"{split}.txt").write_text("".join(lines))
    return rgb, labels


def main() -> None:
    write("train", "digits_train.npz")
    rgb, labels = write("val", "digits_test.npz")
    np.save(HERE / "val_images.npy", rgb[:100].astype(np.float32) / 255.0)
    np.save(HERE / "val_labels.npy", labels[:100])
    print(f"caffebox example: PNGs and list files in {HERE}")


if __name__ == "__main__":
    main()
