"""The `plugins.snapshots` config section."""

from __future__ import annotations

import voluptuous as vol

from sophonfog_bridge import cv

NonNegative = cv.Number(0)

CONFIG_SCHEMA = vol.Schema(
    {
        vol.Optional("path", default="snapshots"): vol.All(str, cv.NonBlank),
        vol.Optional("save_registered", default=False): bool,
        vol.Optional("save_face", default=False): bool,
        vol.Optional("save_ir", default=False): bool,
        vol.Optional("annotate", default=True): bool,
        # The annotated copy's longest side at most (a JPEG is decoded at 1/2..1/8 of its
        # size when that is enough: a fraction of the CPU); 0 keeps the photo's own size.
        vol.Optional("annotate_max_px", default=960): vol.All(
            vol.Coerce(int), vol.Any(0, vol.Range(min=160, max=8192))
        ),
        # `request`: the annotated copy is made when first asked for (GET /snapshots/...),
        # most photos never are; `save`: with every event, for browsing the folder on disk.
        vol.Optional("annotate_on", default="request"): vol.In(("request", "save")),
        # 0 switches thumbnails off; otherwise the longest side in pixels.
        vol.Optional("thumbnail_px", default=0): vol.All(
            vol.Coerce(int), vol.Any(0, vol.Range(min=16, max=4096))
        ),
        # Empty means every person type / every device.
        vol.Optional("person_types", default=list): [cv.PersonTypeName],
        vol.Optional("devices", default=list): [vol.All(str, cv.NonBlank)],
        # 0 keeps photos forever (by age) / without a size bound.
        vol.Optional("retention_days", default=30): NonNegative,
        vol.Optional("max_total_mb", default=1024): NonNegative,
        vol.Optional("cleanup_interval_s", default=600): cv.Seconds(0.2),
        # Decoded size above which an image is treated as a decompression bomb.
        vol.Optional("max_megapixels", default=40): cv.Number(0.01, 500),
        # A TTF/OTF/TTC file for captions; empty finds a CJK font on the system.
        vol.Optional("font", default=""): str,
    },
    extra=vol.PREVENT_EXTRA,
)
