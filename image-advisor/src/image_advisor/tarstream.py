"""A lean reader of tar streams: each member's header once, in order; its data skipped unless asked for.

    members = TarStream(fileobj)        # positioned at the tar's start; seeks forward only
    for member in members:
        if member.isfile() and wanted(member.name):
            text = members.read(member)  # before the next member, or never

A layer of a big image holds about a hundred thousand members, and the standard library's
tarfile spends most of its time on each header's fields that no report here reads (owners,
times, device numbers, checksums in two signednesses). This reads what the advisor needs:
the name (ustar prefix, GNU long names, pax path), the size (pax size, GNU base-256), the type,
the mode and the link target; it checks each header's checksum, so what is not a tar is
refused at its first block. Errors are tarfile.ReadError, as tarfile's own are.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

BLOCK = 512
REGULAR = (b"0", b"\0", b"7")  # a file, a file in the old format, a contiguous file
LINKS = (b"1", b"2")  # a hard link, a symbolic link
KNOWN = (*REGULAR, *LINKS, b"3", b"4", b"5", b"6")  # what carries no data of its own but a regular file
PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK, GNU_SPARSE = b"x", b"g", b"L", b"K", b"S"
POSIX_MAGIC = b"ustar\x0000"
MAX_EXTENDED = 1 << 20  # a pax header or GNU long name is read whole: one larger than this is no honest archive's


class TarFormatError(tarfile.ReadError):
    """Not a tar, or one that ends inside a member."""


@dataclass(slots=True)
class Member:
    name: str
    size: int  # the file's bytes (a sparse file's full size); 0 for anything but a file
    type: bytes
    mode: int
    linkname: str
    data_size: int = 0  # bytes of data that follow the header in the archive
    data_offset: int = 0

    def isfile(self) -> bool:
        return self.type in REGULAR or self.type == GNU_SPARSE

    def isdir(self) -> bool:
        return self.type == b"5"

    def issym(self) -> bool:
        return self.type == b"2"

    def islnk(self) -> bool:
        return self.type == b"1"


def _octal(field: bytes) -> int:
    """An octal field as nearly every header writes it; -1 for anything else (_number reads those)."""
    try:
        return int(field.split(b"\0", 1)[0] or b"0", 8)
    except ValueError:
        return -1


def _number(field: bytes) -> int:
    """An octal header field, or GNU's base-256 for numbers too large for it."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        return int.from_bytes(field[1:], "big") - (1 << (8 * (len(field) - 1)))
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise TarFormatError(f"invalid number field {bytes(field)!r} in a tar header") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


ADLER = 65521  # zlib.adler32's low half is 1 + the sum of the bytes, modulo this prime


def _byte_sum(block: bytes, zeros: int) -> int:
    """sum(block), given how many of its bytes are zero: from zlib.adler32 (in C) where the sum is sure to be
    below ADLER, as in nearly every tar header (mostly NULs and ASCII), else by summing in Python (ten times
    slower: it is done for every header of every layer)."""
    if 255 * (len(block) - zeros) < ADLER:
        return (zlib.adler32(block) & 0xFFFF) - 1
    return sum(block)


def _checksum_ok(header: bytes) -> bool:
    try:
        stored = _number(header[148:156])
    except TarFormatError:
        return False
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32  # the field itself counts as spaces
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for i, b in enumerate(header) if not 148 <= i < 156) + 8 * 32
    return stored == signed


def _pax_records(data: bytes) -> dict[str, str]:
    """A pax extended header's `length key=value\\n` records."""
    records, at = {}, 0
    while at < len(data) and data[at:at + 1] != b"\0":
        space = data.find(b" ", at)
        try:
            length = int(data[at:space])
        except ValueError:
            raise TarFormatError("invalid pax extended header") from None
        if space < 0 or length <= 0 or at + length > len(data):
            raise TarFormatError("invalid pax extended header")
        key, _, value = data[space + 1:at + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        at += length
    return records


class TarStream:
    """The members of the tar that fileobj holds from its current position (which counts as 0); fileobj reads,
    tells and seeks forward (a seek past the end stops at the end). closed: the tar must end with its zero block,
    as a stream whose end says nothing of its completeness must (a tar that ends between members is cut)."""

    def __init__(self, fileobj: IO[bytes], closed: bool = False):
        self.fileobj = fileobj
        self.closed = closed
        self.start = fileobj.tell()
        self.next_header = 0  # where the next header starts, from self.start
        self.global_pax: dict[str, str] = {}

    def _at(self, offset: int) -> None:
        """Move to offset (from the start); reading or seeking, never back."""
        target = self.start + offset
        here = self.fileobj.tell()
        if here == target:
            return
        if here > target:
            raise TarFormatError("a tar member was read past its end")
        if target - 1 > here:
            self.fileobj.seek(target - 1)
        if not self.fileobj.read(1):  # the byte before target: a seek past a file's end says nothing
            raise TarFormatError("unexpected end of data")

    def _block(self, offset: int, size: int) -> bytes:
        self._at(offset)
        data = self.fileobj.read(size)
        if len(data) < size:
            raise TarFormatError("unexpected end of data" if offset or data else "empty file")
        return data

    def _header(self) -> bytes | None:
        """The next header block; None at the end (a zero block, or the stream's end between members)."""
        self._at(self.next_header)
        header = self.fileobj.read(BLOCK)
        if not header:
            if self.next_header == 0:
                raise TarFormatError("empty file")
            if self.closed:
                raise TarFormatError("unexpected end of data: the tar ended between two members")
            return None
        if len(header) < BLOCK:
            raise TarFormatError("unexpected end of data" if self.next_header else "truncated header")
        zeros = header.count(0)
        if zeros == BLOCK:
            return None
        if not (_octal(header[148:156]) == _byte_sum(header, zeros) - sum(header[148:156]) + 256
                or _checksum_ok(header)):
            raise TarFormatError("bad checksum" if self.next_header else "not a tar: its first block is no tar header")
        return header

    def __iter__(self) -> Iterator[Member]:
        pax: dict[str, str] = {}
        longname = longlink = None
        while (header := self._header()) is not None:
            kind = header[156:157]
            size = _octal(header[124:136])
            if size < 0:
                size = _number(header[124:136])
            data_offset = self.next_header + BLOCK
            self.next_header = data_offset + -(-size // BLOCK) * BLOCK
            if kind in (PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                if size > MAX_EXTENDED:
                    raise TarFormatError(f"an extended header of {size:,} bytes: refused (at most {MAX_EXTENDED:,})")
                data = self._block(data_offset, size)
                if kind == PAX:
                    pax = _pax_records(data)
                elif kind == PAX_GLOBAL:
                    self.global_pax.update(_pax_records(data))
                elif kind == GNU_LONGNAME:
                    longname = _text(data)
                else:
                    longlink = _text(data)
                continue
            records = {**self.global_pax, **pax} if self.global_pax else pax
            if "path" in records:
                name = records["path"]
            elif longname is not None:
                name = longname
            else:
                name = _text(header[0:100])
                if header[345] and header[257:265] == POSIX_MAGIC:
                    name = _text(header[345:500]) + "/" + name
            linkname = ""
            if kind in LINKS:  # only a link's target is read
                linkname = records.get("linkpath", longlink if longlink is not None else _text(header[157:257]))
            if "size" in records:
                try:
                    size = int(records["size"])
                except ValueError:
                    raise TarFormatError("invalid pax size") from None
                self.next_header = data_offset + -(-size // BLOCK) * BLOCK
            pax, longname, longlink = {}, None, None
            if kind == b"\0" and name.endswith("/"):
                kind = b"5"  # the old format's directory: a file whose name ends in a slash
            if kind == b"5":
                name = name.rstrip("/")  # as tarfile names a directory
            if kind == GNU_SPARSE:
                offset, extended = data_offset, header[482]
                while extended:  # more of the sparse map, a block each, before the data
                    extended = self._block(offset, BLOCK)[504]
                    offset += BLOCK
                self.next_header = offset + -(-size // BLOCK) * BLOCK
                yield Member(name, _number(header[483:495]), kind, _number(header[100:108]), linkname, size, offset)
                continue
            carries_data = kind in REGULAR or kind not in KNOWN
            mode = _octal(header[100:108])
            yield Member(name, size if kind in REGULAR else 0, kind, mode if mode >= 0 else _number(header[100:108]),
                         linkname, size if carries_data else 0, data_offset)
            if not carries_data:
                self.next_header = data_offset

    def read(self, member: Member) -> bytes:
        """The member's data: while it is the member the iteration is at."""
        return self._block(member.data_offset, member.data_size) if member.data_size else b""

    def open(self, member: Member) -> io.BufferedReader:
        """The member's data as a file that reads, peeks and seeks forward: while it is the member the
        iteration is at."""
        return io.BufferedReader(_Slice(self.fileobj, self.start + member.data_offset, member.data_size),
                                 buffer_size=64 << 10)


class _Slice(io.RawIOBase):
    """size bytes of inner from start: reads and forward seeks, never past the end."""

    def __init__(self, inner: IO[bytes], start: int, size: int):
        self.inner, self.start, self.size, self.pos = inner, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        if self.inner.tell() != self.start + self.pos:
            self.inner.seek(self.start + self.pos)
        data = self.inner.read(want)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.pos + offset if whence == io.SEEK_CUR else self.size + offset
        target = min(max(target, 0), self.size)
        if target < self.pos:
            raise io.UnsupportedOperation("a stream seeks forward only")
        self.pos = target
        return self.pos
