"""Batch processing: one engine over many inputs, on this machine or on a Ray cluster.

``main.py batch ENGINE --inputs 'portraits/*.jpg' --out results/`` (see
:mod:`engines.batch.command`). The batch is a plan and one per-item function:

* :mod:`.items` turns ``--inputs`` patterns (paired by name) or a CSV manifest into items;
* :mod:`.work` holds :func:`~engines.batch.work.process_item`, the per-item function: load
  the inputs, run the engine, export, the same steps as ``main.py run``. It never raises for
  a bad item; it returns an outcome (a small dict) that says what happened;
* :mod:`.pool` runs it in the standard library's process pool, :mod:`.cluster` runs the
  very same function as Ray tasks; neither knows anything about engines;
* :mod:`.records` keeps a JSON record per item (input hashes, parameters, status), which
  makes a batch resumable, and writes ``summary.csv``;
* :mod:`.runner` ties these together (:func:`~engines.batch.runner.run_batch`).

Nothing here is engine-specific and nothing imports Qt; Ray is imported only when a
cluster is asked for (the optional ``cluster`` extra). The package imports nothing on
its own (``main.py`` builds its parser from :mod:`.command` at every start): use
``from engines.batch.runner import run_batch, BatchOptions``.
"""
