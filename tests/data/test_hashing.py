"""aiida_reactmlip.hashing.sha256_file: one sha256 for paths, binary and text handles (pure)."""

from __future__ import annotations

import hashlib
import io

from aiida_reactmlip.hashing import sha256_file


def test_path_and_handles_give_the_content_sha256(tmp_path):
    content = b"x" * (3 << 20) + b"tail"  # more than one read chunk
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    expected = hashlib.sha256(content).hexdigest()
    assert sha256_file(path) == sha256_file(str(path)) == expected
    with open(path, "rb") as handle:
        assert sha256_file(handle) == expected
    stream = io.BytesIO(b"head" + content)
    stream.seek(4)  # read from the current position
    assert sha256_file(stream) == expected
    assert sha256_file(io.StringIO("Cu 0 0 0\n")) == hashlib.sha256(b"Cu 0 0 0\n").hexdigest()
