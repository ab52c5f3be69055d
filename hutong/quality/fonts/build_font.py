"""Build hutong/quality/fonts/wqy-microhei-gb.ttf: WenQuanYi Micro Hei cut to what reports print.

Run from the repository root where Debian's fonts-wqy-microhei is installed (build time only; the
product reads the shipped file): ``python hutong/quality/fonts/build_font.py``. See SOURCE.md."""
import gzip
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection


def main() -> None:
    src = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
    out = Path("hutong/quality/fonts/wqy-microhei-gb.ttf")
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x180)) | set(range(0x2000, 0x2070)) | set(range(0x2190, 0x2200))
    chars |= set(range(0x2200, 0x2300)) | set(range(0x2460, 0x24FF)) | set(range(0x2500, 0x2600)) | set(range(0x3000, 0x3040))
    chars |= set(range(0xFF00, 0xFFF0)) | {0x00B7, 0x2103, 0x2116, 0x2160, 0x2161, 0x2162, 0x2163, 0x2164}
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes([hi, lo]).decode("gb2312")))
            except UnicodeDecodeError:
                pass
    # every character of the package's own Chinese data (division names, catalogs, messages)
    for p in Path("hutong").rglob("*"):
        if p.suffix in (".py", ".po", ".html", ".csv", ".json", ".md") or p.name.endswith(".csv.gz"):
            try:
                text = gzip.open(p, "rt").read() if p.name.endswith(".gz") else p.read_text()
            except Exception:
                continue
            chars |= {ord(c) for c in text if ord(c) >= 0x2E80}
    font = TTCollection(src).fonts[0]
    cmap = font.getBestCmap()
    have = {c for c in chars if c in cmap}
    print(len(chars), "wanted", len(have), "in the font")
    opts = subset.Options()
    opts.layout_features = ["*"]
    opts.name_IDs = ["*"]
    opts.notdef_outline = True
    opts.hinting = False
    s = subset.Subsetter(opts)
    s.populate(unicodes=sorted(have))
    s.subset(font)
    font.save(out)
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
