"""The relay part of scripts/bench: a listener of this server against a direct loopback
connection to the same destination, side by side in one run. The destination and the clients
are benches/relay.rs (pinned to the load core), the server is pinned to its own core."""

import json
import os
import subprocess
import urllib.request
from pathlib import Path

from bench import LOAD_CORE, OUT, Process, privx, token_for

CONCURRENT = 1000
LATENCY_CONNECTIONS = 2000


def tool(path, *args, **kwargs):
    return subprocess.Popen(["taskset", "-c", LOAD_CORE, path, *args], stdout=subprocess.PIPE, text=True, **kwargs)


def measure(path, *args):
    out = subprocess.run(["taskset", "-c", LOAD_CORE, path, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def create_listener(url, token, port):
    body = json.dumps({"network": "tcp", "destination": f"bench/127.0.0.1:{port}", "keep_open_sec": 3600})
    request = urllib.request.Request(f"{url}/extender-service/api/v1/listeners", data=body.encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["address"]


def held_rss(server, relay_tool, address):
    """RSS of the server while CONCURRENT echoing connections are open through it, against its RSS
    just before."""
    before = server.rss_mb()
    holder = tool(relay_tool, "hold", address, str(CONCURRENT), stdin=subprocess.PIPE)
    line = holder.stdout.readline()
    assert line.startswith("holding"), line
    during = server.rss_mb()
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=60)
    return {"connections": int(line.split()[1]), "rss_before_mb": before, "rss_mb": during,
            "kb_per_connection": (during - before) * 1024 / CONCURRENT}


def server_schedule(server):
    """Seconds the server's threads have run, and waited runnable for their core
    (/proc/PID/task/*/schedstat): a listener slower than direct on a busy machine shows why."""
    ran = waited = 0
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        run_ns, wait_ns, _ = map(int, (task / "schedstat").read_text().split())
        ran, waited = ran + run_ns / 1e9, waited + wait_ns / 1e9
    return ran, waited


def relay_benchmark(server_path, relay_tool, directory, seconds):
    destination = tool(relay_tool, "serve")
    port = int(destination.stdout.readline().split()[-1])
    direct = f"127.0.0.1:{port}"
    # mimalloc returns freed memory to the system at once here (by default a second later), so
    # that the server's RSS is the memory it uses: each argon2 run (at start-up, and for the
    # bench's login) takes and frees 19 MiB, which otherwise stay resident and take the held
    # connections' allocations without the RSS growing.
    env = {**os.environ, "MIMALLOC_PURGE_DELAY": "0"}
    server = privx(server_path, directory, "--listener-ports", "40000-40999", env=env)
    try:
        via = create_listener(server.url, token_for(server.url), port)
        # The held connections first, on the fresh server: after the throughput runs, memory they
        # freed is returned to the system only later, and a "before" RSS read then came out above
        # the RSS with the connections held.
        r = {"direct": {}, "listener": {}, "hold": held_rss(server, relay_tool, via)}
        for name, address in (("direct", direct), ("listener", via)):
            before = server_schedule(server)
            r[name].update(measure(relay_tool, "throughput", address, str(seconds)))
            after = server_schedule(server)
            r[name]["server_ran_s"], r[name]["server_waited_s"] = (a - b for a, b in zip(after, before))
            r[name].update(measure(relay_tool, "latency", address, str(LATENCY_CONNECTIONS)))
    finally:
        server.stop()
        destination.kill()
    write_relay_report(r)
    return r


def write_relay_report(r):
    d, l, h = r["direct"], r["listener"], r["hold"]
    share = l["mb_per_s"] / d["mb_per_s"]
    latency = l["p99_ms"] / d["p99_ms"]
    lines = ["# Relay benchmark (one run, loopback, server and load on separate cores)", "",
             "| path | MB/s (one connection) | connect + first byte p50 ms | p99 ms |", "|---|---|---|---|",
             f"| direct | {d['mb_per_s']:.0f} | {d['p50_ms']:.3f} | {d['p99_ms']:.3f} |",
             f"| through a listener | {l['mb_per_s']:.0f} | {l['p50_ms']:.3f} | {l['p99_ms']:.3f} |", "",
             "## Targets", "",
             f"- throughput at least 80% of direct: {share:.0%} ({'met' if share >= 0.8 else '**missed**'})",
             f"- connect + first byte p99 at most 2x direct: {latency:.1f}x "
             f"({'met' if latency <= 2 else '**missed**'})",
             f"- {h['connections']} concurrent echoing connections: RSS {h['rss_before_mb']:.1f} -> "
             f"{h['rss_mb']:.1f} MB, {h['kb_per_connection']:.1f} KiB per connection",
             f"- while the listener's throughput was measured, the server's threads ran {l['server_ran_s']:.2f} s "
             f"and waited {l['server_waited_s']:.2f} s runnable for their core (its core busy with other processes)"]
    (OUT / "relay.md").write_text("\n".join(lines) + "\n")
    (OUT / "relay.json").write_text(json.dumps(r, indent=2))
