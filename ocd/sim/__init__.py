"""Simulation: sample nights, stand-in programs and the simulated night."""
