"""The pure core: events, state, decisions, scheduling, shot lists, machines.

Nothing here opens a socket, a process, a database or reads a clock; a test
(tests/test_core_purity.py) keeps it that way.
"""
