"""Locust support for the chat protocol: a client, an abstract user, their options and the verdict.

Three layers, as locust's custom-client guide suggests, and the check:

* :mod:`harness.locust.client`: :class:`~harness.locust.client.ChatClient`, one
  connection whose every action is a timed locust request, over the sans-IO
  :class:`harness.record.connection.RecordingConnection` (the swarm's bots drive
  the same one);
* :mod:`harness.locust.user`: the abstract ``ChatUser`` and ``SteadyChatUser``;
* :mod:`harness.locust.options`: the ``--chat-*`` options (no locust import:
  usable anywhere);
* :mod:`harness.locust.check`: the harness checker's verdict when a test stops,
  distributed runs included.

The locustfiles (``locustfiles/``) hold only the concrete users and load shapes.
Importing :mod:`harness.locust.client`, :mod:`~harness.locust.user` or
:mod:`~harness.locust.check` imports locust, which patches the standard library
for gevent; this package's ``__init__`` and ``options`` do not.
"""
