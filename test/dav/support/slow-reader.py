# A DAV client that reads slowly: a receive buffer of a few KiB (SO_RCVBUF before connect, so the
# TCP window stays small), one GET, then it stops reading until told "go" on stdin, and reads on to
# the end. Prints one JSON line: bytes read after "go", and how the connection ended.
import json, socket, ssl, sys

port, authorization, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", port))
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
conn = context.wrap_socket(raw, server_hostname="localhost")
conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authorization}\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    head += conn.recv(1024)
print("HEAD " + head.split(b"\r\n", 1)[0].decode(), flush=True)
sys.stdin.readline()
after, ended = 0, "eof"
try:
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        after += len(chunk)
except ConnectionResetError:
    ended = "reset"
except (ssl.SSLError, OSError) as err:
    ended = type(err).__name__
print(json.dumps({"after": after, "ended": ended}), flush=True)
