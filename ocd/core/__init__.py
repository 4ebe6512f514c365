"""The pure core of OCD: values and functions, no reactor, sockets or databases."""
