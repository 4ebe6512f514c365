"""twistd plugin for OCD: ``twistd ocd`` takes exactly ``ocd run``'s options.

This file only points at :mod:`ocd.tap`; it must not import the reactor
(or txZMQ, which installs one) so that ``twistd -r`` can still choose.
"""

from twisted.application.service import ServiceMaker

ocd = ServiceMaker(
    "ocd",
    "ocd.tap",
    "OCD: run the HETDEX survey at the Hobby-Eberly Telescope",
    "ocd",
)
