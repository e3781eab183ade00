"""The shared vocabulary every layer speaks; it imports nothing of dataflow_nb but ``exceptions``.

``types``: the field type table (hint, SQL, Arrow and frame types); ``spec``: a model class read
into fields and a table; ``partitions``: how a table is split; ``reading``: reader options;
``masking``: the ``Sensitive`` marker and the mask; ``digest``: the audit's digest of a bulk input;
``identifiers``: names the database takes as they are; ``load_plan`` and ``load_report``: what a
bulk node and a backend's load job exchange (the plan, the source's protocol, the report). What
lower layers need of the objects above them is in ``protocols.py`` and ``backends/base.py``. The layers
are drawn in ``docs/architecture.md`` and checked by ``lint-imports``.
"""
