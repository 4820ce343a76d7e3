"""A serial link to a device that speaks the UART frames: one request, one ACK, stop and wait.

Usage:
    with Link.open("/dev/ttyACM0", timeout=10.0) as link:
        reply = link.request(frames.INFO)          # the ACK's payload after the status byte
        link.request(frames.SAMPLE, payload)       # retried on a damaged frame or ACK

`request` sends a frame, then reads until the ACK of its sequence number
arrives. A request whose ACK reports damage on the way (bad_crc, truncated),
or that gets no intact ACK within the timeout, is sent again with the same
sequence number, up to `retries` times; the device does not execute a
repeated SAMPLE or RESET_HEAD twice (it resends its ACK), so a retry never
trains a sample twice. Any other status is the device refusing the request:
DeviceRefused. A device that prints its boot banner (ET_BOOT) while we wait
has reset: DeviceReset, so the caller can say what the device lost.
Every failure is a UserError subclass with a one-line message.
"""
from __future__ import annotations

import errno
import time

from ..errors import UserError
from ..toolchain import frames

BAUD = 115200
BOOT_MARK = b"ET_BOOT board="
MAX_REPLY = 2048   # the largest ACK payload: PREDICT with 256 classes is 1,058 B


class DeviceTimeout(UserError):
    """No intact ACK arrived, however many times the request was sent."""


class DeviceReset(UserError):
    """The device printed its boot banner while a request was outstanding."""


class DeviceRefused(UserError):
    """The device acknowledged the request with a status other than ok."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def open_serial(port: str, timeout: float):
    """The pyserial port, opened exclusively; a missing or busy port is one line."""
    try:
        import serial
    except ImportError:
        raise UserError("pyserial is not installed: `pip install pyserial==3.5` "
                        "(requirements.lock)") from None

    try:
        return serial.Serial(port, BAUD, timeout=min(timeout, 0.05), write_timeout=timeout,
                             exclusive=True)
    except serial.SerialException as e:
        msg = str(e)
        if "exclusively lock" in msg or getattr(e, "errno", None) in (errno.EBUSY, errno.EAGAIN):
            raise UserError(f"serial port {port} is busy: another program has it open "
                            "(close picocom/screen or the other entropi-tiny)") from None
        if getattr(e, "errno", None) == errno.ENOENT:
            raise UserError(f"serial port {port} does not exist (is the board plugged in? "
                            "for the twin, use the path `entropi-tiny twin` printed)") from None
        raise UserError(f"cannot open serial port {port}: {msg.splitlines()[0]}") from None
    except OSError as e:
        raise UserError(f"cannot open serial port {port}: {e.strerror or e}") from None


class Link:
    """Stop-and-wait requests over an open port (anything with read/write/close)."""

    def __init__(self, port, name: str, timeout: float = 10.0, retries: int = 3):
        self.port, self.name = port, name
        self.timeout, self.retries = timeout, retries
        self.decoder = frames.Decoder(MAX_REPLY)
        self.seq = 0
        self.tail = b""          # recent bytes, to spot a boot banner split across reads
        self.resends = 0         # requests sent again (damage or timeout)
        self.resend_reasons: dict[str, int] = {}

    @classmethod
    def open(cls, port: str, timeout: float = 10.0, retries: int = 3) -> "Link":
        link = cls(open_serial(port, timeout), port, timeout, retries)
        try:
            link.port.reset_input_buffer()   # what the device said before we came is stale
        except OSError:
            pass
        return link

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.port.close()
        except OSError:
            pass

    def _write(self, wire: bytes) -> None:
        import serial

        try:
            self.port.write(wire)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise UserError(f"writing to {self.name} failed: {e}; was the device unplugged?") \
                from None

    def _read(self) -> bytes:
        import serial

        try:
            return self.port.read(4096)
        except (serial.SerialException, OSError) as e:
            raise UserError(f"reading from {self.name} failed: {e}; was the device unplugged?") \
                from None

    def _wait_ack(self, seq: int, deadline: float) -> frames.Frame | None:
        """The intact ACK of `seq`, or None at the deadline."""
        while time.monotonic() < deadline:
            chunk = self._read()
            if not chunk:
                continue
            window = self.tail + chunk
            if BOOT_MARK in window:
                self.tail = b""
                raise DeviceReset(f"the device on {self.name} reset (it printed its boot banner)")
            self.tail = window[-len(BOOT_MARK):]
            for event in self.decoder.feed(chunk):
                if isinstance(event, frames.Frame) and event.type == frames.ACK \
                        and event.seq == seq and event.payload:
                    return event
        self.decoder.timeout()   # a damaged frame in the buffer can never complete now
        return None

    def request(self, ftype: int, payload: bytes = b"") -> bytes:
        """Send one request; return its reply (the ACK payload after the status byte)."""
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        wire = frames.encode(ftype, seq, payload)
        for attempt in range(self.retries + 1):
            if attempt:
                self.resends += 1
            self._write(wire)
            ack = self._wait_ack(seq, time.monotonic() + self.timeout)
            if ack is None or ack.payload[0] in frames.RETRY_STATUSES:
                why = "timeout" if ack is None else frames.status_name(ack.payload[0])
                self.resend_reasons[why] = self.resend_reasons.get(why, 0) + 1
                continue
            status = ack.payload[0]
            if status != frames.OK:
                raise DeviceRefused(f"the device refused the request: "
                                    f"{frames.status_name(status)}", status)
            return ack.payload[1:]
        raise DeviceTimeout(f"no answer from {self.name} within {self.timeout:g} s "
                            f"({self.retries + 1} tries): is it running the streaming image "
                            "(firmware/<board>/stream) and is this its port? (after a reset it "
                            "first trains on its embedded samples: wait, or raise --timeout)")
