"""Talking to a board, or to its QEMU twin, from the host: flash, serial requests, the pty twin.

Usage:
    from entropi_tiny.device.flash import flash_image      # entropi-tiny flash
    from entropi_tiny.device.link import Link               # frames over a serial port
    from entropi_tiny.device.session import Session         # entropi-tiny device ...
    from entropi_tiny.device.twin import Twin               # entropi-tiny twin

Modules: protocol (the firmware's request and reply payloads), link
(stop-and-wait over pyserial), session (the `device` sub-commands against a
run folder), images (files to the model's int8 input), flash (probes),
twin (QEMU with its UART on a pseudo-terminal).
"""
