#!/usr/bin/env python3
"""Writes fuzz/corpus/mqtt_codec/: real MQTT 3.1.1 and 5.0 packets (as sent
by mosquitto_pub/sub and paho) and malformed ones. Each file is one control
byte for mqtt_codec_fuzz (bit 0: MQTT 5; bits 1-3: chunk size 2^n; bit 4:
64-byte maximum packet size) followed by the byte stream.
Run from the repository root: python3 fuzz/gen_mqtt_corpus.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "mqtt_codec")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(raw=b""):
    return varint(len(raw)) + raw


def connect(level, flags, keep, cid, props_raw=None, will=None, user=None, pw=None):
    body = s("MQTT") + bytes([level, flags]) + struct.pack(">H", keep)
    if level == 5:
        body += props(props_raw or b"")
    body += s(cid)
    if will:
        if level == 5:
            body += props(will[2] if len(will) > 2 else b"")
        body += s(will[0]) + s(will[1])
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(0x10, body)


V311, V5 = 0x0E, 0x0F  # chunk 128, 3.1.1 / 5
samples = {}

# --- valid 3.1.1 streams
samples["v311_connect_minimal"] = (V311, connect(4, 0x02, 60, "sensor-1"))
samples["v311_connect_will_user_pw"] = (V311, connect(4, 0xEE, 30, "dev", will=("status/dev", "offline"), user="u", pw="p"))
samples["v311_session"] = (V311,
    connect(4, 0x02, 60, "c") +
    pkt(0x82, struct.pack(">H", 1) + s("factory/telemetry/+") + b"\x01" + s("#") + b"\x00") +
    pkt(0x30, s("factory/telemetry/sensor-1/temp") + b"21.5") +
    pkt(0x32, s("a/b") + struct.pack(">H", 2) + b"qos1") +
    pkt(0x34, s("a/b") + struct.pack(">H", 3) + b"qos2") +
    pkt(0x62, struct.pack(">H", 3)) +
    pkt(0xA2, struct.pack(">H", 4) + s("a/#")) +
    pkt(0xC0, b"") + pkt(0xE0, b""))
samples["v311_broker_side"] = (V311,
    pkt(0x20, b"\x00\x00") + pkt(0x90, struct.pack(">H", 1) + b"\x01\x80") + pkt(0x40, b"\x00\x02") +
    pkt(0x50, b"\x00\x03") + pkt(0x70, b"\x00\x03") + pkt(0xB0, b"\x00\x04") + pkt(0xD0, b"") +
    pkt(0x31, s("retained/topic") + b"r"))
samples["v311_byte_by_byte"] = (0x00, connect(4, 0x02, 60, "x") + pkt(0x30, s("t") + b"p"))

# --- valid 5.0 streams
cprops = (b"\x11" + struct.pack(">I", 3600) + b"\x21" + struct.pack(">H", 20) + b"\x22" + struct.pack(">H", 10) +
          b"\x27" + struct.pack(">I", 262144) + b"\x17\x01\x19\x00" + b"\x26" + s("k") + s("v"))
wprops = b"\x18" + struct.pack(">I", 5) + b"\x01\x01" + b"\x02" + struct.pack(">I", 60) + b"\x03" + s("text/plain")
samples["v5_connect_full"] = (V5, connect(5, 0xF6, 60, "valve-1", cprops, will=("status/valve-1", "gone", wprops), user="u", pw="p"))
pprops = (b"\x01\x01" + b"\x02" + struct.pack(">I", 10) + b"\x03" + s("application/json") + b"\x08" + s("reply/x") +
          b"\x09" + s(b"\x00\x01") + b"\x23" + struct.pack(">H", 1) + b"\x26" + s("a") + s("b"))
samples["v5_session"] = (V5,
    connect(5, 0x02, 60, "c") +
    pkt(0x82, struct.pack(">H", 1) + props(b"\x0b\x05") + s("a/+") + b"\x2d" + s("$share/g/x") + b"\x01") +
    pkt(0x32, s("a/b") + struct.pack(">H", 2) + props(pprops) + b"{}") +
    pkt(0x30, s("") + props(b"\x23\x00\x01") + b"aliased") +
    pkt(0x40, b"\x00\x02") + pkt(0x50, b"\x00\x03\x10") + pkt(0x62, b"\x00\x03\x00" + props(b"\x1f" + s("r"))) +
    pkt(0xA2, struct.pack(">H", 4) + props() + s("a/+")) +
    pkt(0xC0, b"") + pkt(0xE0, b"\x04" + props(b"\x11\x00\x00\x00\x00")))
caprops = (b"\x12" + s("assigned") + b"\x13\x01\x2c" + b"\x21\x00\x64" + b"\x22\x00\x10" + b"\x24\x01" + b"\x25\x01" +
           b"\x27\x00\x04\x00\x00" + b"\x28\x01\x29\x01\x2a\x01")
samples["v5_broker_side"] = (V5,
    pkt(0x20, b"\x00\x00" + props(caprops)) + pkt(0x90, b"\x00\x01" + props() + b"\x01\x87") +
    pkt(0xB0, b"\x00\x04" + props() + b"\x00\x11") + pkt(0x33, s("t") + b"\x00\x09" + props(b"\x0b\x01\x0b\x02") + b"x") +
    pkt(0xD0, b"") + pkt(0xE0, b"\x8e") + pkt(0xF0, b"\x18" + props(b"\x15" + s("m") + b"\x16" + s("d"))))
samples["v5_chunk1"] = (0x01, connect(5, 0x02, 0, "") + pkt(0x30, s("t") + props() + b"p"))

# --- malformed
samples["bad_remaining_length_5_bytes"] = (V311, b"\x30\xff\xff\xff\xff\x01")
samples["bad_remaining_length_non_minimal"] = (V5, b"\xc0\x80\x00")
samples["bad_too_large_small_max"] = (0x1F, pkt(0x30, s("t") + props() + b"x" * 100))
samples["bad_publish_qos3"] = (V311, pkt(0x36, s("t") + b"\x00\x01"))
samples["bad_publish_dup_qos0"] = (V5, pkt(0x38, s("t") + props()))
samples["bad_publish_wildcard"] = (V5, pkt(0x30, s("a/#") + props()))
samples["bad_publish_surrogate"] = (V311, pkt(0x30, s(b"a\xed\xa0\x80")))
samples["bad_publish_nul"] = (V5, pkt(0x30, s(b"a\x00b") + props()))
samples["bad_publish_overlong_utf8"] = (V311, pkt(0x30, s(b"\xc0\xaf")))
samples["bad_topic_alias_zero"] = (V5, pkt(0x30, s("t") + props(b"\x23\x00\x00")))
samples["bad_repeated_property"] = (V5, pkt(0x30, s("t") + props(b"\x02\x00\x00\x00\x01\x02\x00\x00\x00\x01")))
samples["bad_property_not_allowed"] = (V5, pkt(0x30, s("t") + props(b"\x11\x00\x00\x00\x01")))
samples["bad_subscription_id_zero"] = (V5, pkt(0x82, b"\x00\x01" + props(b"\x0b\x00") + s("a") + b"\x00"))
samples["bad_subscribe_empty"] = (V311, pkt(0x82, b"\x00\x01"))
samples["bad_subscribe_reserved_flags"] = (V311, pkt(0x80, b"\x00\x01" + s("a") + b"\x00"))
samples["bad_subscribe_options"] = (V5, pkt(0x82, b"\x00\x01" + props() + s("a") + b"\xc0"))
samples["bad_packet_id_zero"] = (V311, pkt(0x32, s("t") + b"\x00\x00"))
samples["bad_connect_level3"] = (V311, pkt(0x10, s("MQIsdp") + b"\x03\x02\x00\x3c" + s("c")))
samples["bad_connect_reserved_flag"] = (V311, pkt(0x10, s("MQTT") + b"\x04\x03\x00\x3c" + s("c")))
samples["bad_connect_password_no_user"] = (V311, pkt(0x10, s("MQTT") + b"\x04\x42\x00\x3c" + s("c") + s("pw")))
samples["bad_connect_will_qos_no_will"] = (V311, pkt(0x10, s("MQTT") + b"\x04\x0a\x00\x3c" + s("c")))
samples["bad_connect_trailing"] = (V5, pkt(0x10, s("MQTT") + b"\x05\x02\x00\x3c" + props() + s("c") + b"junk"))
samples["bad_auth_in_311"] = (V311, pkt(0xF0, b""))
samples["bad_pingreq_body"] = (V311, pkt(0xC0, b"x"))

os.makedirs(OUT, exist_ok=True)
for name, (control, stream) in samples.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([control]) + stream)
print(f"wrote {len(samples)} files to {OUT}")
