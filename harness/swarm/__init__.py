"""The swarm: bots aimed at a chat server, their histories judged, shown live and recorded.

``python -m harness.swarm`` (docs/swarm.md). One module per concern:

* :mod:`~harness.swarm.cli`: the command line, its output and exit codes;
* :mod:`~harness.swarm.run`: one run (:class:`~harness.swarm.run.Swarm`), its settings, its phases;
* :mod:`~harness.swarm.hives`: the bots' event loops, in a thread or in worker processes, and their messages;
* :mod:`~harness.swarm.bot`: one bot's connections and bounded waits, over the recording connection;
* :mod:`~harness.swarm.scenarios`: the plans and what each role does;
* :mod:`~harness.swarm.monitor`: the live picture, added up from the hives' reports;
* :mod:`~harness.swarm.dashboard`: rich renderables over snapshots and the summary;
* :mod:`~harness.swarm.summary`: the summary document (``--json``, summary.json).
"""
