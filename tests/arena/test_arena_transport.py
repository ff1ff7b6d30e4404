"""Transport guards: the body cap, HEAD, the Origin check, Secure cookies, slow and half-open
connections, and proxy headers believed only from a trusted proxy."""

from __future__ import annotations

import socket
import time

import httpx

from nmm_arena.catalog import load_catalog

COOKIE = "nmm_arena_session"


def _first_key(client) -> str:
    return client.get("/").text.split('name="pair" value="')[1][:16]


def test_vote_body_over_64_kib_is_refused(make_client, pair_file, admin):
    client = make_client(pair_file)
    key = _first_key(client)
    big = {"pair": key, "choice": "left", "comment": "x" * (70 * 1024)}
    response = client.post("/vote", data=big)
    assert response.status_code == 413

    def chunks():  # no Content-Length: counted while it streams
        yield f"pair={key}&choice=left&comment=".encode()
        for _ in range(80):
            yield b"y" * 1024

    streamed = client.post("/vote", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
    assert client.get("/export.json", headers=admin).json() == []
    assert client.post("/vote", data={"pair": key, "choice": "left", "comment": "fits"}).status_code == 303


def test_head_is_answered_like_get(make_client, pair_file):
    client = make_client(pair_file, public_leaderboard=True)
    for path in ("/", "/leaderboard", "/arena.css", "/healthz"):
        head, get = client.head(path), client.get(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_cross_site_posts_are_refused(make_client, pair_file, admin):
    client = make_client(pair_file)
    key = _first_key(client)
    vote = {"pair": key, "choice": "left"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"},
                    {"Origin": "https://testserver"}):  # another scheme is another origin
        response = client.post("/vote", data=vote, headers=headers)
        assert response.status_code == 403, headers
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert client.post("/admin/login", data={"token": "x" * 20}, headers={"Origin": "http://evil.example"}
                       ).status_code == 403
    assert client.get("/export.json", headers=admin).json() == []
    assert client.post("/vote", data=vote, headers={"Origin": "http://testserver"}).status_code == 303
    other = _first_key(client)
    same = {"Sec-Fetch-Site": "same-origin", "Origin": "null"}
    assert client.post("/vote", data={"pair": other, "choice": "left"}, headers=same).status_code == 303


def test_cookie_is_secure_over_https(make_client, pair_file):
    plain = make_client(pair_file).get("/").headers["set-cookie"]
    assert "secure" not in plain.lower()
    secure = make_client(pair_file, base_url="https://testserver").get("/").headers["set-cookie"]
    assert "; secure" in secure.lower() and "httponly" in secure.lower()


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed the connection (whatever it wrote before closing)."""
    try:
        for _ in range(100):
            if sock.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def test_slow_and_half_open_connections_are_closed(tmp_path, pairs_writer, server):
    pairs = pairs_writer(tmp_path / "run", 3, image=False)
    with server(pairs, tmp_path / "arena.sqlite", "--request-timeout", "1") as url:
        host, port = url.removeprefix("http://").split(":")
        socks = []
        for n in range(30):
            sock = socket.create_connection((host, int(port)))
            if n % 3 == 1:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head never finished
            elif n % 3 == 2:
                # a body that stalls
                sock.sendall(b"POST /vote HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npair=")
            socks.append(sock)
        # Meanwhile the arena serves others, HEAD included (uvicorn's h11 sends no body for it).
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        head = httpx.head(f"{url}/arena.css", timeout=5)
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 100
        time.sleep(2.5)
        for sock in socks:
            sock.settimeout(2)
            assert _closed_by_server(sock)
            sock.close()
        # A keep-alive client that is quick is unaffected.
        with httpx.Client(base_url=url, timeout=5) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
                time.sleep(0.4)


def test_forwarded_for_is_ignored_without_a_trusted_proxy(tmp_path, pairs_writer, server):
    pairs = pairs_writer(tmp_path / "run", 2, image=False)
    with server(pairs, tmp_path / "arena.sqlite", "--sessions-per-address", "2") as url:
        codes = [httpx.get(f"{url}/", headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code for n in range(3)]
        assert codes == [200, 200, 429]  # every request counts against 127.0.0.1
    assert len(load_catalog(pairs)) == 2


def test_a_named_proxy_is_believed_for_address_and_https(tmp_path, pairs_writer, server):
    pairs = pairs_writer(tmp_path / "run", 2, image=False)
    flags = ("--sessions-per-address", "1", "--forwarded-allow-ips", "127.0.0.1")
    with server(pairs, tmp_path / "arena.sqlite", *flags) as url:
        via_proxy = [httpx.get(f"{url}/", headers={"X-Forwarded-For": f"10.0.0.{n}", "X-Forwarded-Proto": "https"})
                     for n in range(3)]
        assert [r.status_code for r in via_proxy] == [200, 200, 200]  # three voters behind the proxy
        assert all("; secure" in r.headers["set-cookie"].lower() for r in via_proxy)
        again = httpx.get(f"{url}/", headers={"X-Forwarded-For": "10.0.0.1"})
        assert again.status_code == 429  # 10.0.0.1's one session this hour is taken
