"""Tools, grants, the catalogue of tools declared in code, and the portal."""
