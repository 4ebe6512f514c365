"""Twisted services and effects: the parts of the tree that act on the world."""
