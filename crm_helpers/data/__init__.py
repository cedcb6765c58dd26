"""Data: the operational systems' exports, declared (``sources``), read and parsed (``reading``,
``parsing``), loaded into staging (``collect``) and checked (``quality``)."""
