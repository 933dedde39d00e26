"""LayerStream's reading thread: an error it meets stays an error for every later read."""

from __future__ import annotations

import gzip
import io

import pytest

from skanse.errors import LayerError
from skanse.oci.layers import LayerStream, new_budget
from skanse.oci.vfs import ViewLimits
from skanse.oci.writer import LayerBuilder


def test_corrupt_gzip_keeps_failing_after_the_first_error() -> None:
    # no digest to check: once the corruption was reported, a later read (or finish) must
    # not see a clean end of data and let the layer pass
    data = bytearray(gzip.compress(LayerBuilder().add_file("/a", b"a" * 50_000).tar_bytes()))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    stream = LayerStream(
        io.BytesIO(bytes(data)),
        budget=new_budget(ViewLimits()),
        where="layer 0",
        digest=None,
        diff_id=None,
    )
    try:
        with pytest.raises(LayerError, match="gzip"):
            while stream.next_chunk():
                pass
        with pytest.raises(LayerError, match="gzip"):
            stream.next_chunk()
        with pytest.raises(LayerError, match="gzip"):
            stream.finish()
    finally:
        stream.stop()
