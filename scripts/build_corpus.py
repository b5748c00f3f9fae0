#!/usr/bin/env python3
"""Builds the human-text corpus (human-dev.jsonl.gz) from four extracted Debian packages.

Usage: build_corpus.py EXTRACTED_DIR OUTPUT.jsonl.gz

EXTRACTED_DIR holds one folder per package, each the output of `dpkg-deb -x PKG.deb DIR/PKG`:
fortunes, r-cran-janeaustenr, bible-kjv-text, dict-devil. Standard library only. Writes one
JSON object a line, {"source", "genre", "doc_id", "text"}, in this order of sources:

  deb:fortunes           one fortune per `%`-separated entry, doc_id FILE/N (N counts the
                         non-empty entries of FILE from 0); all files but ascii-art; overstrikes
                         (X\\b) removed
  deb:r-cran-janeaustenr one chapter per document, doc_id BOOK/N (N from 1, through the book)
  deb:bible-kjv-text     one chapter per document, verses (stripped) joined by spaces,
                         doc_id "BOOK N"
  deb:dict-devil         one dictd entry per document, doc_id its headword in the index

With the packages of Debian 12 this reproduces the shared corpus line for line but one: in
"Joshua 7" the source's double space after "country." is kept (the shared file has one space).
Diagnostics go to stderr. If the Austen data cannot be read, that source is left out with a
warning.
"""
import gzip
import json
import os
import re
import struct
import sys
import zlib

FORTUNES = ("deb:fortunes", "quotations/humor")
AUSTEN = ("deb:r-cran-janeaustenr", "fiction (1811-1817)")
KJV = ("deb:bible-kjv-text", "scripture (1611)")
DEVIL = ("deb:dict-devil", "satirical dictionary (1911)")

KJV_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
    "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos",
    "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
    "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians",
    "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians", "1 Thessalonians",
    "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews", "James",
    "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
]


def log(msg):
    print(f"build_corpus: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- fortunes
def fortunes(root):
    d = os.path.join(root, "fortunes/usr/share/games/fortunes")
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if (name.endswith((".dat", ".u8")) or name == "ascii-art" or os.path.islink(path)
                or not os.path.isfile(path)):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = re.sub(r".\x08", "", f.read(), flags=re.S)  # strip overstrike (bold/underline)
        entries = [e.strip() for e in text.split("\n%\n")]
        for i, e in enumerate(e for e in entries if e):
            yield FORTUNES, f"{name}/{i}", e


# ---------------------------------------------------------------- Austen (R lazy-load database)
class RUnserializer:
    """Just enough of R's XDR serialization (format 2/3) for lists of character vectors."""

    def __init__(self, buf):
        self.b, self.p, self.refs = buf, 0, []

    def int(self):
        (v,) = struct.unpack_from(">i", self.b, self.p)
        self.p += 4
        return v

    def read(self):
        if self.b[:2] != b"X\n":
            raise ValueError("not an XDR serialization")
        self.p = 2
        version = self.int()
        self.int(), self.int()  # writer's R version, minimal reader version
        if version == 3:
            n = self.int()  # length of the native encoding's name, then the name
            self.p += n
        return self.item()

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 253, 242):  # NULL, global env, empty env
            return None
        if t == 255:  # reference to an earlier symbol
            return self.refs[((flags >> 8) or self.int()) - 1]
        if t == 1:  # symbol
            v = self.item()
            self.refs.append(v)
            return v
        if t == 9:  # CHARSXP
            n = self.int()
            if n < 0:
                return None
            latin1 = (flags >> 12) & 4  # LATIN1_MASK in the levels; otherwise UTF-8 or ASCII
            v = self.b[self.p:self.p + n].decode("latin-1" if latin1 else "utf-8", errors="replace")
            self.p += n
            return v
        if t == 2:  # pairlist: [(tag, value), ...]
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            car = self.item()
            return [(tag, car)] + (self.item() or [])
        if t in (10, 13, 14, 16, 19):  # logical, integer, double, character, list
            n = self.int()
            if t in (10, 13, 14):
                fmt = "d" if t == 14 else "i"
                v = list(struct.unpack_from(f">{n}{fmt}", self.b, self.p))
                self.p += n * struct.calcsize(fmt)
            else:
                v = [self.item() for _ in range(n)]
            if has_attr:
                attrs = dict(self.item())
                if "names" in attrs:
                    return dict(zip(attrs["names"], v))
            return v
        raise ValueError(f"unsupported R object type {t}")


def lazyload_blob(blob):
    (size,) = struct.unpack(">I", blob[:4])
    kind = blob[4:5]
    if kind == b"Z":
        import bz2
        data = bz2.decompress(blob[5:])
    elif kind == b"X":
        import lzma
        data = lzma.decompress(blob[5:])
    elif kind == b"0":
        data = blob[5:]
    else:
        data = zlib.decompress(blob[4:])
    if len(data) != size:
        raise ValueError("bad length in lazy-load database")
    return data


def austen(root):
    d = os.path.join(root, "r-cran-janeaustenr/usr/lib/R/site-library/janeaustenr/data")
    with open(os.path.join(d, "Rdata.rdx"), "rb") as f:
        raw = f.read()
    index = RUnserializer(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b"
                          else lazyload_blob(raw)).read()
    with open(os.path.join(d, "Rdata.rdb"), "rb") as f:
        db = f.read()
    heading = re.compile(r"^\s*chapter\s+([0-9]+|[ivxlc]+)\b", re.I)
    for book, (off, length) in index["variables"].items():
        lines = RUnserializer(lazyload_blob(db[off:off + length])).read()
        chapters, cur = [], None  # text before the first chapter heading is front matter
        for line in lines:
            if heading.match(line or ""):
                if cur is not None:
                    chapters.append(cur)
                cur = []
            elif cur is not None:
                cur.append(line or "")
        if cur is not None:
            chapters.append(cur)
        if not chapters:
            log(f"warning: no chapter headings in {book}")
        for i, ch in enumerate(chapters, 1):
            text = "\n".join(ch).strip()
            if text:
                yield AUSTEN, f"{book}/{i}", text


# ---------------------------------------------------------------- KJV (bible-kjv's windowed LZW)
def unlzw(src, maxbits=16):
    """Decompress a headerless block of Unix `compress` output (block mode)."""
    maxmaxcode = 1 << maxbits
    prefix = [0] * maxmaxcode
    suffix = bytearray(maxmaxcode)
    suffix[:256] = bytes(range(256))
    out = bytearray()
    n_bits, maxcode, free_ent, clear = 9, 511, 257, False
    pos, oldcode, finchar = 0, -1, 0
    while True:
        # `compress` reads codes in groups of n_bits bytes; a width change or a CLEAR drops
        # what is left of the current group.
        if free_ent > maxcode:
            n_bits += 1
            maxcode = maxmaxcode if n_bits == maxbits else (1 << n_bits) - 1
        if clear:
            n_bits, maxcode, clear = 9, 511, False
        chunk = src[pos:pos + n_bits]
        pos += len(chunk)
        if not chunk:
            break
        val, off, mask = int.from_bytes(chunk, "little"), 0, (1 << n_bits) - 1
        avail = len(chunk) * 8 - (n_bits - 1)  # bits that can start a whole code
        while off < avail:
            code = (val >> off) & mask
            off += n_bits
            if oldcode == -1:
                oldcode = finchar = code
                out.append(code)
                continue
            if code == 256:
                clear, free_ent = True, 256
                break
            incode, stack = code, bytearray()
            if code >= free_ent:
                stack.append(finchar)
                code = oldcode
            while code >= 256:
                stack.append(suffix[code])
                code = prefix[code]
            finchar = suffix[code]
            stack.append(finchar)
            stack.reverse()
            out += stack
            if free_ent < maxmaxcode:
                prefix[free_ent], suffix[free_ent] = oldcode, finchar
                free_ent += 1
            oldcode = incode
            if free_ent > maxcode:
                break
    return bytes(out)


def kjv(root):
    with open(os.path.join(root, "bible-kjv-text/usr/lib/bible.data"), "rb") as f:
        data = f.read()
    if data[:4] != b"EC02":
        raise ValueError("bible.data: unknown format (expected magic EC02)")
    wsize, wnum = struct.unpack(">II", data[84:92])
    table = struct.unpack(f">{wnum + 1}I", data[92:92 + 4 * (wnum + 1)])
    text = b"".join(unlzw(data[table[i]:table[i + 1]]) for i in range(wnum))
    chapters, order, abbrevs = {}, [], []
    for line in text.decode("latin-1").split("\n"):
        m = re.match(r"(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if not m:
            continue  # the title line
        key = (m[1], int(m[2]))
        if m[1] not in abbrevs:
            abbrevs.append(m[1])
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(m[4].strip())
    if len(abbrevs) != len(KJV_BOOKS):
        raise ValueError(f"bible.data: {len(abbrevs)} books, expected {len(KJV_BOOKS)}")
    for book, ch in order:
        yield KJV, f"{KJV_BOOKS[abbrevs.index(book)]} {ch}", " ".join(chapters[(book, ch)]).strip()


# ---------------------------------------------------------------- Devil's Dictionary (dictd)
def devil(root):
    d = os.path.join(root, "dict-devil/usr/share/dictd")
    with gzip.open(os.path.join(d, "devil.dict.dz")) as f:  # dictzip is gzip
        data = f.read()
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def num(s):
        v = 0
        for c in s:
            v = v * 64 + b64.index(c)
        return v

    with open(os.path.join(d, "devil.index"), encoding="utf-8") as f:
        for line in f:
            word, off, length = line.rstrip("\n").split("\t")[:3]
            text = data[num(off):num(off) + num(length)].decode("utf-8", errors="replace").strip()
            if text:
                yield DEVIL, word, text


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: build_corpus.py EXTRACTED_DIR OUTPUT.jsonl.gz")
    root, out = sys.argv[1], sys.argv[2]
    counts = {}
    with open(out, "wb") as raw, gzip.GzipFile("human-dev.jsonl", "wb", 9, raw, mtime=0) as gz:
        for source in (fortunes, austen, kjv, devil):
            n = 0
            try:
                for (src, genre), doc_id, text in source(root):
                    line = {"source": src, "genre": genre, "doc_id": doc_id, "text": text}
                    gz.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
                    n += 1
            except Exception as e:  # noqa: BLE001 - only Austen is optional
                if source is not austen or n:
                    raise
                log(f"warning: skipping Jane Austen (r-cran-janeaustenr): unreadable R data: {e}")
            counts[source.__name__] = n
    log("documents: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
