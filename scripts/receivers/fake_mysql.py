#!/usr/bin/env python3
"""A scripted MySQL server for the client's tests of what MariaDB cannot show: MySQL 8's
caching_sha2_password (the fast path, and full authentication with the server's RSA key,
checked here with the `cryptography` package), a server without TLS, and a hostile server.

  fake_mysql.py --port N --mode sha2-fast|sha2-full|no-tls|garbage [--password PW]

Serves connections until killed; answers every query with OK. Prints "ready" when listening.
"""
import argparse, hashlib, os, socket, struct, sys, threading

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--mode", required=True)
ap.add_argument("--password", default="s3cret-pw")
a = ap.parse_args()

KEY = None
if a.mode == "sha2-full":
    from cryptography.hazmat.primitives.asymmetric import rsa, padding
    from cryptography.hazmat.primitives import hashes, serialization
    KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def send(c, seq, payload):
    c.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)


def recv(c):
    head = b""
    while len(head) < 4:
        d = c.recv(4 - len(head))
        if not d: raise EOFError
        head += d
    n = head[0] | head[1] << 8 | head[2] << 16
    body = b""
    while len(body) < n:
        d = c.recv(n - len(body))
        if not d: raise EOFError
        body += d
    return head[3], body


OK = b"\x00\x00\x00\x02\x00\x00\x00"


def err(code, state, msg):
    return b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + msg.encode()


def serve(c):
    try:
        scramble = os.urandom(20).replace(b"\x00", b"\x01")
        # 0xF7FF leaves out CLIENT_SSL (1 << 11): no mode offers TLS.
        caps = 0xF7FF | (1 << 19) | (1 << 21) | (1 << 24) | (1 << 15) | (1 << 9)
        plugin = b"caching_sha2_password"
        hs = (b"\x0a" + b"8.0.36-fake\x00" + struct.pack("<I", 7) + scramble[:8] + b"\x00" + struct.pack("<H", caps & 0xFFFF)
              + bytes([45]) + struct.pack("<H", 2) + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + scramble[8:] + b"\x00" + plugin + b"\x00")
        send(c, 0, hs)
        seq, resp = recv(c)
        if a.mode == "garbage":
            for junk in [b"\xfe", b"\x01", b"\x00\xfc", b"\xff\x01", os.urandom(50), b"\x05" + b"\xfd\xff\xff\xff"]:
                send(c, seq + 1, junk)
            c.close(); return
        # Parse HandshakeResponse41: caps, max packet, charset, 23 zeros, user, auth (lenenc), db, plugin.
        i = 32
        user_end = resp.index(b"\x00", i)
        i = user_end + 1
        n = resp[i]; auth = resp[i + 1:i + 1 + n]
        pw = a.password.encode()
        h1 = hashlib.sha256(pw).digest()
        expected = bytes(x ^ y for x, y in zip(h1, hashlib.sha256(hashlib.sha256(h1).digest() + scramble).digest()))
        if auth != expected:
            send(c, seq + 1, err(1045, "28000", "Access denied for user (fake)")); c.close(); return
        if a.mode == "sha2-fast":
            send(c, seq + 1, b"\x01\x03"); send(c, seq + 2, OK); seq += 2
        else:
            send(c, seq + 1, b"\x01\x04")
            seq, req = recv(c)
            if req != b"\x02":
                send(c, seq + 1, err(1045, "28000", "expected a public key request")); c.close(); return
            send(c, seq + 1, b"\x01" + PEM)
            seq, sealed = recv(c)
            plain = KEY.decrypt(sealed, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
            clear = bytes(b ^ scramble[k % 20] for k, b in enumerate(plain))
            if clear != pw + b"\x00":
                send(c, seq + 1, err(1045, "28000", "Access denied (full auth)")); c.close(); return
            send(c, seq + 1, OK)
        while True:
            seq, cmd = recv(c)
            if cmd[:1] == b"\x01": break
            send(c, seq + 1, OK)
    except (EOFError, ConnectionError, ValueError):
        pass
    finally:
        c.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", a.port))
s.listen(16)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
