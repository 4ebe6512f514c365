"""OCD: the program that runs the HETDEX survey at the Hobby-Eberly Telescope."""

__version__ = "0.1.0"
