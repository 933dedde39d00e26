"""Software inventories (SBOMs): image or directory -> packages -> CycloneDX, SPDX, JSON.

`catalog` runs the catalogers (one module each under `catalogers/`, one interface in
`catalogers/_base.py`); `formats` writes the documents.
"""
