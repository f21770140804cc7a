"""tarstream reads what the standard library's tarfile reads, member for member, in every format tarfile writes."""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from image_advisor.tarstream import ADLER, TarFormatError, TarStream, _byte_sum, _number

LONG = "usr/lib/python3.11/site-packages/" + "a-very-long-package-name/" * 10 + "module.py"  # past ustar's 255


def _archive(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        def add(name: str, data: bytes | None = None, **fields) -> None:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("etc", type=tarfile.DIRTYPE, mode=0o755)
        add("etc/os-release", b"ID=debian\n", mode=0o644)
        add("usr/bin/tool", b"\x7fELF" + bytes(3000), mode=0o4755)  # data over several blocks, setuid
        add(LONG, b"print('hi')\n")
        add("usr/bin/sh", type=tarfile.SYMTYPE, linkname="dash")
        add("usr/bin/link-" + "x" * 120, type=tarfile.SYMTYPE, linkname="target-" + "y" * 120)  # long link
        add("usr/bin/hard", type=tarfile.LNKTYPE, linkname="usr/bin/tool")
        add("app/.wh.old.py", b"")
        add("app/caf\u00e9.txt", b"accented\n")
        add("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("run/fifo", type=tarfile.FIFOTYPE)
    return out.getvalue()


def _by_tarfile(data: bytes) -> list[tuple]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m.name, m.size if m.isfile() else 0, m.type, m.mode, m.linkname,
                 tar.extractfile(m).read() if m.isfile() else b"") for m in tar]


def _by_tarstream(data: bytes) -> list[tuple]:
    members = TarStream(io.BytesIO(data))
    return [(m.name, m.size, m.type, m.mode, m.linkname, members.read(m) if m.isfile() else b"") for m in members]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_every_member_as_tarfile_reads_it(fmt):
    if fmt == tarfile.USTAR_FORMAT:  # ustar cannot hold the long names: the others without them
        data = _archive_without_long_names()
    else:
        data = _archive(fmt)
    expected = _by_tarfile(data)
    assert _by_tarstream(data) == expected
    assert any(len(name) > 255 for name, *_ in expected) or fmt == tarfile.USTAR_FORMAT


def _archive_without_long_names() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [("a/" * 60 + "f.txt", b"in the prefix field"), ("b.txt", b"b")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_skipped_data_is_never_read_and_a_read_member_reads_its_bytes():
    data = _archive(tarfile.PAX_FORMAT)
    members = TarStream(io.BytesIO(data))
    wanted = {m.name: members.read(m) for m in members if m.name.endswith("module.py")}
    assert wanted == {LONG: b"print('hi')\n"}


def test_a_pax_size_record_sets_the_size():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 5
        info.pax_headers = {"size": "5"}
        tar.addfile(info, io.BytesIO(b"12345"))
        tar.addfile(tarfile.TarInfo("after"), io.BytesIO(b""))
    assert [(m.name, m.size) for m in TarStream(io.BytesIO(out.getvalue()))] == [("big.bin", 5), ("after", 0)]


def test_numbers_past_octal_use_base_256():
    assert _number(b"\x80" + (8 << 30).to_bytes(11, "big")) == 8 << 30
    assert _number(b"0000644\x00") == 0o644
    assert _number(b"       \x00") == 0


def test_an_old_style_directory_is_a_directory():
    header = bytearray(tarfile.TarInfo("olddir/").tobuf(tarfile.USTAR_FORMAT))
    header[156:157] = b"\0"  # a regular file in the old format, named with a trailing slash
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    (member,) = TarStream(io.BytesIO(bytes(header) + bytes(1024)))
    assert member.isdir() and member.name == "olddir"


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b"not a tar at all" * 64, "not a tar"),
    (b"short", "truncated header"),
], ids=["empty", "garbage", "short"])
def test_what_is_not_a_tar_is_refused(data, message):
    with pytest.raises(TarFormatError, match=message):
        list(TarStream(io.BytesIO(data)))


def test_a_tar_cut_inside_a_member_is_refused():
    data = _archive(tarfile.GNU_FORMAT)
    cut = data.index(b"\x7fELF") + 1000  # inside usr/bin/tool's data
    with pytest.raises(TarFormatError, match="unexpected end of data"):
        list(TarStream(io.BytesIO(data[:cut])))
    with pytest.raises(tarfile.ReadError):  # what the callers catch, as for tarfile's own errors
        list(TarStream(io.BytesIO(data[:cut + 300])))


def test_a_closed_tar_must_end_with_its_zero_block():
    """A stream's end says nothing of its completeness: cut between two members, a closed tar is refused,
    where a file's tar without its end blocks reads as tarfile reads it."""
    data = _archive(tarfile.GNU_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        boundary = tar.getmembers()[-1].offset
    assert [m.name for m in TarStream(io.BytesIO(data[:boundary]))] == names_before(data, boundary)
    with pytest.raises(TarFormatError, match="ended between two members"):
        list(TarStream(io.BytesIO(data[:boundary]), closed=True))
    assert len(list(TarStream(io.BytesIO(data), closed=True))) == len(list(TarStream(io.BytesIO(data))))


def names_before(data: bytes, offset: int) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name.rstrip("/") for m in tar.getmembers() if m.offset < offset]


def test_a_corrupted_header_is_refused():
    data = bytearray(_archive(tarfile.GNU_FORMAT))
    second = 512 + 512  # etc/ then etc/os-release's header, then its one block of data: the third header
    data[second + 512 + 10] ^= 0xFF
    with pytest.raises(TarFormatError, match="bad checksum"):
        list(TarStream(io.BytesIO(bytes(data))))


def test_a_huge_extended_header_is_refused_unread():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "c" * 100}
        tar.addfile(info, io.BytesIO(b""))
    data = bytearray(out.getvalue())
    data[124:136] = b"%011o\0" % (1 << 31)  # the pax header says it holds 2 GiB
    data[148:156] = b" " * 8
    data[148:155] = b"%06o\0" % sum(data[:512])
    with pytest.raises(TarFormatError, match="extended header of 2,147,483,648 bytes: refused"):
        list(TarStream(io.BytesIO(bytes(data))))


def test_the_byte_sum_is_exact_on_either_path():
    """_byte_sum takes zlib's adler32 where the sum must be below its modulus and sums in Python elsewhere: equal to
    sum() on random blocks of every density, and on the sums next to the modulus."""
    rng = random.Random(5)
    for nonzero in (0, 1, 100, 256, 257, 300, 512):
        for _ in range(200):
            block = bytearray(512)
            for i in rng.sample(range(512), nonzero):
                block[i] = rng.randint(1, 255)
            block = bytes(block)
            assert _byte_sum(block, block.count(0)) == sum(block)
    for total in (ADLER - 256, ADLER - 255, ADLER - 1, ADLER, ADLER + 1):  # 255 x 256 = 65280 < ADLER < 255 x 257
        block = bytearray(512)
        left = total
        for i in range(512):
            block[i] = min(255, left)
            left -= block[i]
        block = bytes(block)
        assert sum(block) == total and _byte_sum(block, block.count(0)) == total
