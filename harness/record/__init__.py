"""What a run is made of: the payload, the histories, the run-record files, the recording connection.

* :mod:`~harness.record.payload`: the ``b= n= t=`` text every harness client chats;
* :mod:`~harness.record.history`: what one client saw and did (events, roles, how it ended);
* :mod:`~harness.record.connection`: the sans-IO recording connection that bots and locust users drive;
* :mod:`~harness.record.counters`: the live counters it keeps;
* :mod:`~harness.record.store`: the run record's files (``load_run`` is also here, for notebooks).
"""

from harness.record.store import load_run

__all__ = ["load_run"]
