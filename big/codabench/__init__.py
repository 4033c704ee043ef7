"""CodaBench side of the BIG benchmark: bundle builder, linter and a local compute-worker emulator.

Modules: ``bundle`` (``big bundle``, ``assemble_starting_kit``), ``lint`` (``big lint``), ``worker``
(``big run-local``), ``demo`` (used by ``big demo``) and ``cli`` (the verbs). Nothing heavy is
imported here.
"""
