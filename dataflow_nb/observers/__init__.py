"""The observers that follow a run: each subscribes to the run's events (``RunObserver`` in
``protocols.py``) instead of the run context carrying a field for it.

Here are those of stores kept in lower layers: the result cache (``cache.py``), the monitor
(``monitor.py``), the run history (``history.py``), and the running digests of bulk input that
the audit keeps (``digests.py``). The stores themselves (``cache/``, ``monitor/``) know nothing of
runs; this package sits above ``protocols.py`` so its observers type the run as a ``Run``.

A new concern that follows runs is a ``RunObserver`` subclass overriding the hooks it needs: here
when it observes a store of a lower layer, in its own package when it is above (the audit and the
masking of sensitive values are in ``security/``). Add it in ``workflow/subscribers.py`` (one per
DataFlow) or, if it spans databases, in the runtime (``workflow/runtime.py``).
"""
