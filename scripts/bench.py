"""The benchmark behind scripts/bench (run that, not this): every server it measures is one it
starts itself on 127.0.0.1 and stops; every load run is bounded in time."""

import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

OUT = Path("target/bench")
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
USERS = int(os.environ.get("BENCH_USERS", "100000"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000,10000,100000,1000000").split(",")]
CONNECTIONS = 32
ADMIN_PASSWORD, CLIENT_SECRET = "bench-admin-password", "bench-client-secret"
CLIENT_ID = "privx-external"  # the server's default OAuth client
SERVER_CORE, LOAD_CORE = "0", "1"
USERS_PATH = "/local-user-store/api/v1/users"


class Process:
    """A server on 127.0.0.1, pinned to SERVER_CORE, stopped on exit."""

    def __init__(self, argv, marker, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *argv], stdout=self.log, stderr=self.log, env=env
        )
        self.url = None
        deadline = time.monotonic() + 120
        while self.url is None:
            text = Path(self.log.name).read_text(errors="replace")
            for line in text.splitlines():
                if marker in line:
                    self.url = line.split(marker, 1)[1].strip().split()[0].rstrip("/")
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start:\n{text}")
            time.sleep(0.05)

    def rss_mb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.log.name)


def privx(server, data_dir, *extra, wrapper=()):
    argv = [*wrapper, server, "--bind", "127.0.0.1:0", "--data-dir", str(data_dir), "--log-level", "error",
            "--admin-password", ADMIN_PASSWORD, "--oauth-client-id", CLIENT_ID,
            "--oauth-client-secret", CLIENT_SECRET, *extra]
    return Process(argv, "privx-mock listening on ")


def token_for(url):
    body = urllib.parse.urlencode({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
    request = urllib.request.Request(f"{url}/auth/api/v1/oauth/token", data=body.encode())
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode())
    return json.load(urllib.request.urlopen(request))["access_token"]


def get(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return response.read()


def fixtures_with_users(n, path):
    """A fixtures document with n users (a tag in ten, no passwords) and one listener."""
    with open(path, "w") as out:
        out.write('{"users": [')
        for i in range(n):
            sep = "," if i else ""
            out.write(f'{sep}{{"id": "{i:08x}-0000-4000-8000-{i:012x}", "username": "user{i}", "tags": ["tag{i % 10}"]}}')
        out.write('], "listeners": [{"id": "11111111-0000-4000-8000-000000000001", '
                  '"network": "tcp", "destination": "ext/db:5432", "keep_open_sec": 86400}]}')


def store_with_users(server, n):
    """A data directory holding n users, made with --import."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{n}-"))
    fixtures = directory / "fixtures.json"
    fixtures_with_users(n, fixtures)
    subprocess.run([server, "--data-dir", str(directory / "data"), "--import", str(fixtures)], check=True)
    fixtures.unlink()
    return directory


def oha(url, token, method="GET", seconds=SECONDS):
    """Throughput and latency percentiles (ms) of `seconds` of load at CONNECTIONS connections."""
    argv = ["taskset", "-c", LOAD_CORE, "oha", "-z", f"{seconds}s", "-c", str(CONNECTIONS), "--no-tui",
            "--output-format", "json", "-m", method, "-H", f"Authorization: Bearer {token}", url]
    report = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    percentiles = report["latencyPercentiles"]
    statuses = report.get("statusCodeDistribution", {})
    return {
        "rps": report["summary"]["requestsPerSec"],
        "p50": percentiles["p50"] * 1000,
        "p99": percentiles["p99"] * 1000,
        "ok": sum(v for k, v in statuses.items() if k.startswith("2")),
        "errors": sum(v for k, v in statuses.items() if not k.startswith("2")),
    }


WRK_CREATE = """
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"username": "bench-%d-%d"}', os.time(), n)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %TOKEN%"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %f, "p50": %f, "p99": %f, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status))
end
"""


def wrk_creates(url, token):
    """Durable creates, each with a new username (oha repeats one body; wrk's script varies it)."""
    script = Path(tempfile.mktemp(suffix=".lua"))
    script.write_text(WRK_CREATE.replace("%TOKEN%", token))
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s", str(script), url]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    script.unlink()
    report = json.loads(out.strip().splitlines()[-1])
    ok = report["requests"] - report["non2xx"]
    return {"rps": ok / report["seconds"], "p50": report["p50"], "p99": report["p99"],
            "ok": ok, "errors": report["non2xx"]}


def scenarios(url, token, user_id, listener_id, count):
    last = max(count - 50, 0)
    return {
        "get user by id": lambda: oha(f"{url}{USERS_PATH}/{user_id}", token),
        "list users, offset 0": lambda: oha(f"{url}{USERS_PATH}?offset=0&limit=50", token),
        "list users, last page": lambda: oha(f"{url}{USERS_PATH}?offset={last}&limit=50", token),
        "list users, username filter": lambda: oha(f"{url}{USERS_PATH}?username=user{count // 2}", token),
        "tag list": lambda: oha(f"{url}{USERS_PATH}/tags", token),
        "get listener": lambda: oha(f"{url}/extender-service/api/v1/listeners/{listener_id}", token),
        "get default service options": lambda: oha(f"{url}/host-store/api/v1/settings/default_service_options", token),
        "create user (durable)": lambda: wrk_creates(f"{url}{USERS_PATH}", token),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--ceiling", required=True)
    parser.add_argument("--prism", required=True)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--relay-tool", required=True)
    parser.add_argument("--relay", action="store_true", help="only the relay benchmark")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.profile:
        return profile(args)
    if args.relay:
        return relay_only(args)
    results = {"connections": CONNECTIONS, "seconds": SECONDS, "users": USERS, "scenarios": {}, "growth": []}

    # This server, with USERS users.
    directory = store_with_users(args.server, USERS)
    server = privx(args.server, directory / "data")
    token = token_for(server.url)
    user_id = f"{USERS // 2:08x}-0000-4000-8000-{USERS // 2:012x}"
    listener_id = "11111111-0000-4000-8000-000000000001"
    body = get(f"{server.url}{USERS_PATH}/{user_id}", token)
    (OUT / "user.json").write_bytes(body)
    ours = {name: run() for name, run in scenarios(server.url, token, user_id, listener_id, USERS).items()}
    ours["token endpoint"] = oha_token(server.url)
    server.stop()
    shutil.rmtree(directory)

    # Prism, mocking the same spec, for the same requests.
    prism = Process([args.prism, "mock", "spec/privx.yaml", "-h", "127.0.0.1", "-p", "18765"],
                    "Prism is listening on ")
    theirs = {name: run() for name, run in scenarios(prism.url, token, user_id, listener_id, USERS).items()}
    theirs["token endpoint"] = oha_token(prism.url)
    prism.stop()

    # The ceiling: dropshot answering the same bytes, with nothing behind it.
    ceiling = Process([args.ceiling, "127.0.0.1:0", str(OUT / "user.json")], "ceiling listening on ")
    top = oha(f"{ceiling.url}{USERS_PATH}/{user_id}", token)
    ceiling.stop()

    for name in ours:
        results["scenarios"][name] = {"privx-mock": ours[name], "prism": theirs.get(name)}
    results["scenarios"]["get user by id"]["ceiling"] = top

    # Growth: latency, disk and memory as the store grows; start-up on the largest.
    for n in SIZES:
        directory = store_with_users(args.server, n)
        disk = sum(f.stat().st_size for f in (directory / "data").rglob("*") if f.is_file()) / 2**20
        started = time.monotonic()
        server = privx(args.server, directory / "data")
        ready = None
        while ready is None:
            try:
                urllib.request.urlopen(f"{server.url}/healthz")
                ready = time.monotonic() - started
            except OSError:
                time.sleep(0.005)
        token = token_for(server.url)
        mid = f"{n // 2:08x}-0000-4000-8000-{n // 2:012x}"
        row = {
            "users": n,
            "startup_s": ready,
            "disk_mb": disk,
            "get": oha(f"{server.url}{USERS_PATH}/{mid}", token, seconds=max(SECONDS // 2, 2)),
            "list": oha(f"{server.url}{USERS_PATH}?offset=0&limit=50", token, seconds=max(SECONDS // 2, 2)),
            "list_last": oha(f"{server.url}{USERS_PATH}?offset={max(n - 50, 0)}&limit=50", token,
                             seconds=max(SECONDS // 2, 2)),
        }
        row["rss_mb"] = server.rss_mb()
        server.stop()
        shutil.rmtree(directory)
        results["growth"].append(row)

    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results)
    plot(results)
    print((OUT / "results.md").read_text())
    relay_only(args)


def relay_only(args):
    from bench_relay import relay_benchmark
    directory = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    relay_benchmark(args.server, args.relay_tool, directory / "data", SECONDS)
    shutil.rmtree(directory)
    print((OUT / "relay.md").read_text())


def oha_token(url):
    """The token endpoint, form-encoded with the OAuth client's HTTP Basic, as the SDKs call it."""
    body = urllib.parse.urlencode({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    argv = ["taskset", "-c", LOAD_CORE, "oha", "-z", f"{SECONDS}s", "-c", str(CONNECTIONS), "--no-tui",
            "--output-format", "json", "-m", "POST", "-H", f"Authorization: Basic {basic}",
            "-T", "application/x-www-form-urlencoded", "-d", body, f"{url}/auth/api/v1/oauth/token"]
    report = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    statuses = report.get("statusCodeDistribution", {})
    return {"rps": report["summary"]["requestsPerSec"], "p50": report["latencyPercentiles"]["p50"] * 1000,
            "p99": report["latencyPercentiles"]["p99"] * 1000,
            "ok": sum(v for k, v in statuses.items() if k.startswith("2")),
            "errors": sum(v for k, v in statuses.items() if not k.startswith("2"))}


def verdict(ok):
    return "met" if ok else "**missed**"


def write_report(r):
    s = r["scenarios"]
    lines = [f"# Benchmark ({r['connections']} connections, {r['seconds']} s a scenario, {r['users']} users)", "",
             "| scenario | privx-mock req/s | p50 ms | p99 ms | errors | Prism req/s | ratio | ceiling req/s | ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in s.items():
        ours, prism, top = row["privx-mock"], row.get("prism"), row.get("ceiling")
        prism_cells = f"{prism['rps']:.0f} | {ours['rps'] / prism['rps']:.1f}x" if prism and prism["rps"] else "- | -"
        top_cells = f"{top['rps']:.0f} | {ours['rps'] / top['rps']:.0%}" if top else "- | -"
        lines.append(f"| {name} | {ours['rps']:.0f} | {ours['p50']:.2f} | {ours['p99']:.2f} | {ours['errors']} | "
                     f"{prism_cells} | {top_cells} |")
    get_user = s["get user by id"]
    reads = [n for n in s if n not in ("create user (durable)", "token endpoint")]
    growth = r["growth"]
    by_size = {g["users"]: g for g in growth}
    lines += ["", "## Targets", "",
              f"- get user by id at least 75% of the ceiling: {get_user['privx-mock']['rps'] / get_user['ceiling']['rps']:.0%} "
              f"({verdict(get_user['privx-mock']['rps'] >= 0.75 * get_user['ceiling']['rps'])})",
              f"- get user by id at least 30x Prism: {get_user['privx-mock']['rps'] / get_user['prism']['rps']:.1f}x "
              f"({verdict(get_user['privx-mock']['rps'] >= 30 * get_user['prism']['rps'])})"]
    for name in reads:
        ours = s[name]["privx-mock"]
        lines.append(f"- {name}: p99 {ours['p99'] / ours['p50']:.1f}x p50 ({verdict(ours['p99'] <= 3 * ours['p50'])})")
    first, last = s["list users, offset 0"]["privx-mock"], s["list users, last page"]["privx-mock"]
    lines.append(f"- list at the last page within 2x of offset 0 (p50): {last['p50'] / first['p50']:.1f}x "
                 f"({verdict(last['p50'] <= 2 * first['p50'])})")
    creates = s["create user (durable)"]["privx-mock"]["rps"]
    lines.append(f"- durable creates at least 5000/s: {creates:.0f}/s ({verdict(creates >= 5000)})")
    if 100000 in by_size:
        rss = by_size[100000]["rss_mb"]
        lines.append(f"- RSS with 100k users under 150 MB: {rss:.0f} MB ({verdict(rss < 150)})")
    if growth:
        big = growth[-1]
        lines.append(f"- start-up on the {big['users']}-user store under 1 s: {big['startup_s']:.2f} s "
                     f"({verdict(big['startup_s'] < 1)})")
    lines += ["", "## Growth", "",
              "| users | get p50 ms | get p99 ms | list p50 ms | last page p50 ms | disk MB | RSS MB | start-up s |",
              "|---|---|---|---|---|---|---|---|"]
    for g in growth:
        lines.append(f"| {g['users']} | {g['get']['p50']:.2f} | {g['get']['p99']:.2f} | {g['list']['p50']:.2f} | "
                     f"{g['list_last']['p50']:.2f} | {g['disk_mb']:.1f} | {g['rss_mb']:.0f} | {g['startup_s']:.2f} |")
    (OUT / "results.md").write_text("\n".join(lines) + "\n")


def plot(r):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    growth = r["growth"]
    if not growth:
        return
    n = [g["users"] for g in growth]
    fig, (latency, size) = plt.subplots(1, 2, figsize=(11, 4))
    latency.plot(n, [g["get"]["p50"] for g in growth], "o-", label="get user p50")
    latency.plot(n, [g["list"]["p50"] for g in growth], "o-", label="list offset 0 p50")
    latency.plot(n, [g["list_last"]["p50"] for g in growth], "o-", label="list last page p50")
    latency.set(xscale="log", yscale="log", xlabel="users", ylabel="ms", title="latency at 32 connections")
    latency.legend()
    size.plot(n, [g["disk_mb"] for g in growth], "o-", label="disk MB")
    size.plot(n, [g["rss_mb"] for g in growth], "o-", label="RSS MB")
    size.plot(n, [g["startup_s"] * 1000 for g in growth], "o-", label="start-up ms")
    size.set(xscale="log", yscale="log", xlabel="users", title="size and start-up")
    size.legend()
    fig.tight_layout()
    fig.savefig(OUT / "growth.png", dpi=100)


PROFILE_REQUESTS = 3000


def callgrind(name):
    """valgrind counting instructions into target/bench/callgrind-NAME.out, off until switched on."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={OUT}/callgrind-{name}.out"]


def count_instructions(process, poke, on):
    """Switches counting on or off. callgrind takes the command when the process next runs, so
    poke it with requests until it has (a few requests more or less in a few thousand)."""
    ctl = subprocess.Popen(["callgrind_control", "-i", "on" if on else "off", str(process.proc.pid)],
                           stdout=subprocess.DEVNULL)
    while ctl.poll() is None:
        poke()
        time.sleep(0.01)


def instructions_per_request(name, process, poke, load):
    """Instructions the process spent per request of `load` (which returns how many it sent),
    counted without its start-up and shut-down; the annotated profile goes to profile-NAME.txt."""
    count_instructions(process, poke, True)
    requests = load()
    count_instructions(process, poke, False)
    process.stop()
    out = OUT / f"callgrind-{name}.out"
    # With counting switched on and off, the header's summary is 0 and the totals come last.
    total = max(int(line.split()[1]) for line in out.read_text(errors="replace").splitlines()
                if line.startswith(("summary:", "totals:")))
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(out)], check=True,
                               capture_output=True, text=True).stdout
    (OUT / f"profile-{name}.txt").write_text("\n".join(annotated.splitlines()[:80]) + "\n")
    return total / requests


def profile(args):
    """Counts the instructions of a get-user request (this server and the ceiling) and of a
    durable create with valgrind --tool=callgrind: repeatable whatever else the machine does."""
    directory = store_with_users(args.server, USERS)
    user_id = f"{USERS // 2:08x}-0000-4000-8000-{USERS // 2:012x}"
    rows = {}

    def fixed_load(url, token):
        argv = ["taskset", "-c", LOAD_CORE, "oha", "-n", str(PROFILE_REQUESTS), "-c", "4", "--no-tui",
                "--output-format", "json", "-H", f"Authorization: Bearer {token}", url]
        subprocess.run(argv, check=True, capture_output=True)
        return PROFILE_REQUESTS

    server = privx(args.server, directory / "data", wrapper=callgrind("get-user"))
    token = token_for(server.url)
    url = f"{server.url}{USERS_PATH}/{user_id}"
    (OUT / "user.json").write_bytes(get(url, token))
    rows["get user by id"] = instructions_per_request("get-user", server, lambda: get(url, token),
                                                       lambda: fixed_load(url, token))

    ceiling = Process([*callgrind("ceiling"), args.ceiling, "127.0.0.1:0", str(OUT / "user.json")],
                      "ceiling listening on ")
    top_url = f"{ceiling.url}{USERS_PATH}/{user_id}"
    rows["ceiling: get user by id"] = instructions_per_request(
        "ceiling", ceiling, lambda: get(top_url, token), lambda: fixed_load(top_url, token))

    server = privx(args.server, directory / "data", wrapper=callgrind("create-user"))
    token = token_for(server.url)
    url = f"{server.url}{USERS_PATH}/{user_id}"
    rows["create user (durable)"] = instructions_per_request(
        "create-user", server, lambda: get(url, token),
        lambda: wrk_creates(f"{server.url}{USERS_PATH}", token)["ok"])
    shutil.rmtree(directory)

    top = rows["ceiling: get user by id"]
    lines = [f"# Instructions per request (valgrind --tool=callgrind, {USERS} users)", "",
             "| scenario | instructions per request | vs the ceiling's get |", "|---|---|---|"]
    lines += [f"| {name} | {n:,.0f} | {n / top:.2f}x |" for name, n in rows.items()]
    lines += ["", "Where they go: `target/bench/profile-*.txt` (callgrind_annotate --inclusive=yes)."]
    (OUT / "profile.md").write_text("\n".join(lines) + "\n")
    print((OUT / "profile.md").read_text())


if __name__ == "__main__":
    main()
