"""CodaBench side of the BIG benchmark: bundle builder, linter and a local compute-worker emulator.

Modules: ``bundle`` (``big bundle``), ``kitfiles`` (the starting kit's files,
``assemble_starting_kit``), ``facts`` (every fact the pages, the kit README and the configs share),
``dates`` (phase dates read as CodaBench reads them), ``lint`` (``big lint``), ``jobrules`` (the
compute worker's rules, pure functions), ``worker`` (``big run-local``), ``kit`` (``big run-local
--kit``), ``demo`` (used by ``big demo``) and ``cli`` (the verbs). Nothing heavy is imported here.
"""
