"""``python -m harness.grade``: grade a student's chat server, level by level.

A course's ladder (docs/exercises.md): eight levels, each a promise of the
protocol (docs/protocol.md) that builds on the ones before it. The grader
starts the student's server itself (or tests one that runs), plays each level
with scripted clients or a swarm judged by the checker, and prints a report
card: PASS / FAIL / not graded per level, and for a failure the first witness
in plain words, a hint that names the likely cause, and the lesson to read.

Modules: :mod:`~harness.grade.levels` (the ladder: what each level checks),
:mod:`~harness.grade.probe` (the scripted client), :mod:`~harness.grade.server`
(the server under test: started, restarted, signalled, always stopped by PID),
:mod:`~harness.grade.card` (results, the report card, ``--json`` and
Gradescope's ``results.json``), :mod:`~harness.grade.cli` (the command line).
"""
