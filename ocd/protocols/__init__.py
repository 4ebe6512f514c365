"""ZeroMQ adapters: sockets only, frames in, events out (and back)."""
