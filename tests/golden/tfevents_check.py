#!/usr/bin/python3
"""tfevents_check.py - check a TensorBoard event file without TensorFlow.

Usage: tfevents_check.py FILE TAG:STEP:VALUE ...

Parses the TFRecord framing (uint64 length, masked CRC32C of the length,
data, masked CRC32C of the data) and the Event protobuf wire format on its
own (a generic field walker, not the writer's layout), then checks: every
CRC, a first event holding file_version "brain.Event:2", and the scalar
events in order equal to the TAG:STEP:VALUE list (VALUE compared as a
float32). Exits 0 when all hold, 1 with a message otherwise.
"""
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def fields(buf):
    """Yield (field number, wire type, value) of one message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        if i > len(buf):
            raise ValueError("field %d runs past its message" % num)
        yield num, wt, v


def records(data):
    i = 0
    while i < len(data):
        if i + 12 > len(data):
            raise ValueError("truncated header at byte %d" % i)
        head = data[i:i + 8]
        (n,) = struct.unpack("<Q", head)
        (hcrc,) = struct.unpack("<I", data[i + 8:i + 12])
        if hcrc != masked(crc32c(head)):
            raise ValueError("length CRC wrong at byte %d" % i)
        body = data[i + 12:i + 12 + n]
        if len(body) != n or i + 16 + n > len(data):
            raise ValueError("truncated record at byte %d" % i)
        (dcrc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if dcrc != masked(crc32c(body)):
            raise ValueError("data CRC wrong at byte %d" % i)
        yield body
        i += 16 + n


def event(body):
    ev = {"values": []}
    for num, wt, v in fields(body):
        if num == 1 and wt == 1:
            ev["wall_time"] = struct.unpack("<d", v)[0]
        elif num == 2 and wt == 0:
            ev["step"] = v - (1 << 64) if v >= 1 << 63 else v
        elif num == 3 and wt == 2:
            ev["file_version"] = v.decode()
        elif num == 5 and wt == 2:
            for n2, _, val in fields(v):
                if n2 != 1:
                    continue
                tag, simple = None, None
                for n3, wt3, x in fields(val):
                    if n3 == 1:
                        tag = x.decode()
                    elif n3 == 2 and wt3 == 5:
                        simple = struct.unpack("<f", x)[0]
                ev["values"].append((tag, simple))
    return ev


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    data = open(argv[1], "rb").read()
    evs = [event(b) for b in records(data)]
    if not evs or evs[0].get("file_version") != "brain.Event:2":
        print("first event is not file_version brain.Event:2: %r" % (evs[:1],))
        return 1
    got = [(t, e.get("step", 0), v) for e in evs[1:] for t, v in e["values"]]
    want = []
    for spec in argv[2:]:
        tag, step, value = spec.rsplit(":", 2)
        want.append((tag, int(step), struct.unpack("<f", struct.pack("<f", float(value)))[0]))
    if got != want:
        print("scalars differ:\n got  %r\n want %r" % (got, want))
        return 1
    if any("wall_time" not in e for e in evs):
        print("an event has no wall_time")
        return 1
    print("ok: %d events, %d scalars" % (len(evs), len(got)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        print("malformed: %s" % e)
        sys.exit(1)
