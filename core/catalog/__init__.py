"""Candidates: which models exist.

The model list from every source (``models``), the Foundry Local runtime with its catalogs and folder
registration (``foundry``), the offline starter pack and its build steps (``starter``,
``starter_build``), and the user's OpenAI-compatible endpoints (``endpoints``).
"""
