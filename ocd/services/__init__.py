"""Twisted services and effects: the main loop, observation numbers, the shot
store and runner, the night log, the replay.
"""
