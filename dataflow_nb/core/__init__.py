"""The shared vocabulary every layer speaks; it imports nothing of dataflow_nb but ``exceptions``.

``types``: the field type table (hint, SQL, Arrow and frame types); ``spec``: a model class read
into fields and a table; ``partitions``: how a table is split; ``reading``: reader options;
``masking``: the ``Sensitive`` marker and the mask; ``identifiers``: names the database takes as
they are; ``protocols``: what lower layers need of the objects above them (a database, a run).
The layers are drawn in ``docs/architecture.md`` and checked by ``lint-imports``.
"""
