"""A caption font that renders Chinese: configured, known system paths, or fontconfig.

Without one, Pillow's built-in font is used: captions still appear, Chinese as boxes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

log = logging.getLogger(__name__)

# Debian/Ubuntu packages first (fonts-wqy-microhei, fonts-wqy-zenhei, fonts-noto-cjk,
# fonts-droid-fallback, fonts-arphic-uming), then Alpine/Fedora, macOS and Windows.
KNOWN_CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Light.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
PROBE = "中"


def renders_cjk(path: str) -> bool:
    """True if the font has a real glyph for 中 (not the same box as an unassigned char)."""
    try:
        font = ImageFont.truetype(path, 24)
        glyph = font.getmask(PROBE)
        return glyph.getbbox() is not None and bytes(glyph) != bytes(font.getmask("\U000f0000"))
    except (OSError, ValueError):
        return False


def _fontconfig_candidate() -> str | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        result = subprocess.run(
            [exe, "-f", "%{file}", ":lang=zh"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def find_cjk_font() -> str | None:
    for path in KNOWN_CJK_FONTS:
        if Path(path).is_file() and renders_cjk(path):
            return path
    candidate = _fontconfig_candidate()
    if candidate and renders_cjk(candidate):
        return candidate
    return None


class FontSource:
    """Fonts by pixel size, from one file found once at startup."""

    def __init__(self, configured: str = ""):
        self.path: str | None = None
        self.cjk = False
        if configured:
            if Path(configured).is_file():
                self.path, self.cjk = configured, renders_cjk(configured)
            else:
                log.warning("snapshots: font %s not found; looking for a system font", configured)
        if self.path is None:
            self.path = find_cjk_font()
            self.cjk = self.path is not None
        if not self.cjk:
            log.warning(
                "snapshots: no font that renders Chinese was found (e.g. apt-get install "
                "fonts-wqy-microhei); captions use %s",
                self.path or "Pillow's default font",
            )

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else "pillow-default"

    def get(self, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        return _load(self.path, size)


@lru_cache(maxsize=16)
def _load(path: str | None, size: int):
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError as err:
            log.warning("snapshots: cannot load font %s (%s); using the default", path, err)
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()
