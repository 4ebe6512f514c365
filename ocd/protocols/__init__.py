"""Every edge: the ZeroMQ bus, the child-process runner, the control client.

Sockets and processes only: frames in, events out (and back); no OCD logic.
"""
