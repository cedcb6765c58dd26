"""Seeded simulation of a multichannel UK retailer (the workbook's sample world).

Stores, a web shop, a call centre, e-mail/SMS campaigns and loyalty cards over 2023-2025, with
latent customer segments, buy-till-you-die behaviour, tier migration, cross-sell, campaign uplift
and known data-quality defects. `generate` writes the raw exports declared in
``sample/sources.yml`` to ``out_dir/raw`` and the ground truth to ``out_dir/truth``.

Layout: ``world`` (fixed catalogue, places, names, campaigns), ``people`` (who the customers
are), ``behaviour`` (what they do), ``records``/``orders`` (how the systems record it, with
noise), ``defects`` (rates and injections), ``output`` (file writing), ``core`` (the driver).
"""

from .core import CHUNK_SIZE, generate
from .defects import DefectRates

__all__ = ["CHUNK_SIZE", "DefectRates", "generate"]
