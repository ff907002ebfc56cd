"""The PostgreSQL part of scripts/bench (`scripts/bench --postgres`; run that, not this): the
PostgreSQL engine with one server and with two servers on one database, side by side with sled,
in one run, for a GET of a user and durable creates at 32 connections.

Everything runs on 127.0.0.1 and is started and stopped here: a throw-away cluster
(scripts/postgres), the servers (the release binary, port 0) and the load. On this project's
2-core machines every privx-mock server is pinned to core 0 and oha and wrk to core 1. The
PostgreSQL cluster (the postmaster and every backend it forks) runs first on core 0, so
PostgreSQL is measured on the one core sled gets, its database included, and then on core 1
(a core of its own, shared with the load generator). Two servers share core 0, so on two cores
they show what a second process costs or gains, not a second machine's worth of throughput.
The CPU time the servers and the database spend a request says where the time goes.

Two servers share the load of one load generator's 32 connections: for GET, two oha runs of 16
connections at once (one a server; rates summed, the worse p50 and p99 of the two); for
creates, one wrk with one thread (16 connections) a server."""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import bench
from bench import (CONNECTIONS, LOAD_CORE, OUT, SECONDS, SERVER_CORE, USERS_PATH, WRK_CREATE,
                   fixtures_with_users, machine, oha, privx, token_for)

# Users in each store: enough that a lookup walks a real index, few enough that importing them
# into PostgreSQL stays within seconds.
USERS = int(os.environ.get("BENCH_PG_USERS", "10000"))
GET_TARGET, CREATE_TARGET = 0.5, 5000

# Spreads wrk's threads over the servers (one thread, so CONNECTIONS / threads connections, a
# server) and keeps their usernames apart: each thread has its own request counter, so the
# thread number goes into the seconds value WRK_CREATE puts in every username.
WRK_SPREAD = """
local ports, started = {%PORTS%}, 0
setup = function(thread)
  started = started + 1
  thread.addr = wrk.lookup("127.0.0.1", tostring(ports[started]))[1]
  thread:set("thread_number", started)
end
init = function(args)
  local time = os.time
  os.time = function() return time() * 10 + thread_number end
end
"""


def cluster(directory):
    """A throw-away PostgreSQL cluster in `directory`, pinned to the server core; its URL."""
    directory.parent.chmod(0o755)  # as root the cluster belongs to `postgres`, which must reach it
    out = subprocess.run(["taskset", "-c", SERVER_CORE, "scripts/postgres", "start", str(directory)],
                         check=True, capture_output=True, text=True).stdout
    variables = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return variables["PRIVX_TEST_DATABASE_URL"]


def import_users(server, directory, *engine):
    directory.mkdir(exist_ok=True)
    fixtures = directory / "fixtures.json"
    fixtures_with_users(USERS, fixtures)
    subprocess.run([server, "--data-dir", str(directory / "data"), *engine, "--import", str(fixtures)],
                   check=True, capture_output=True)
    fixtures.unlink()


@contextlib.contextmanager
def connections(n):
    """bench's load functions run at bench.CONNECTIONS; this many while inside."""
    bench.CONNECTIONS = n
    try:
        yield
    finally:
        bench.CONNECTIONS = CONNECTIONS


def get_user(urls, token, user_id):
    """GET of one user at CONNECTIONS connections, spread evenly over the servers at `urls`."""
    if len(urls) == 1:
        return oha(f"{urls[0]}{USERS_PATH}/{user_id}", token)
    results = [None] * len(urls)

    def run(i):
        results[i] = oha(f"{urls[i]}{USERS_PATH}/{user_id}", token)

    with connections(CONNECTIONS // len(urls)):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {"rps": sum(r["rps"] for r in results), "p50": max(r["p50"] for r in results),
            "p99": max(r["p99"] for r in results), "ok": sum(r["ok"] for r in results),
            "errors": sum(r["errors"] for r in results)}


def creates(urls, token):
    """Durable creates at CONNECTIONS connections spread over the servers at `urls`, with bench's
    wrk script (bench.wrk_creates drives one address with one thread; this needs a thread a
    server)."""
    ports = ", ".join(url.rsplit(":", 1)[1] for url in urls)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SPREAD.replace("%PORTS%", ports) + WRK_CREATE.replace("%TOKEN%", token))
        script.flush()
        argv = ["taskset", "-c", LOAD_CORE, "wrk", f"-t{len(urls)}", f"-c{CONNECTIONS}", f"-d{SECONDS}s",
                "-s", script.name, f"{urls[0]}{USERS_PATH}"]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    ok = report["requests"] - report["non2xx"]
    return {"rps": ok / report["seconds"], "p50": report["p50"], "p99": report["p99"],
            "ok": ok, "errors": report["non2xx"]}


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """CPU time (user and system) the processes `pids` have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def cluster_pids(directory):
    """The cluster's postmaster and every process it forked (a backend a connection)."""
    postmaster = int((directory / "data" / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def with_cpu(run, parts):
    """`run()`'s result with the CPU time each of `parts` (name: its pids) spent a request, in
    microseconds: where a request's time goes, the server or the database."""
    before = {name: cpu_seconds(pids()) for name, pids in parts.items()}
    result = run()
    for name, pids in parts.items():
        result[f"{name}_cpu_us"] = (cpu_seconds(pids()) - before[name]) / max(result["ok"], 1) * 1e6
    return result


def pin(pids, core):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(pid, {int(core)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = {"connections": CONNECTIONS, "seconds": SECONDS, "users": USERS, **machine(),
               "server_core": SERVER_CORE, "load_core": LOAD_CORE, "scenarios": {}}
    user_id = f"{USERS // 2:08x}-0000-4000-8000-{USERS // 2:012x}"
    base = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    servers = []
    url = None
    try:
        import_users(args.server, base / "sled")
        servers.append(privx(args.server, base / "sled" / "data"))
        url = cluster(base / "cluster")
        import_users(args.server, base, "--database-url", url)
        # Started one after the other: the second takes the secrets the first wrote.
        servers.append(privx(args.server, base / "unused", "--database-url", url))
        servers.append(privx(args.server, base / "unused", "--database-url", url))
        sled, pg_a, pg_b = (server.url for server in servers)
        sled_token, pg_token = token_for(sled), token_for(pg_a)
        parts = {"server": lambda: [server.proc.pid for server in servers],
                 "database": lambda: cluster_pids(base / "cluster")}
        scenarios = {"get user by id": lambda urls, token: get_user(urls, token, user_id),
                     "create user (durable)": creates}
        for scenario, run in scenarios.items():
            results["scenarios"][scenario] = {"sled": with_cpu(lambda: run([sled], sled_token), parts)}
        # The database on the servers' core (one core for the whole server side, as sled has),
        # then on the load's core (a core of its own, shared with the load generator).
        for core in (SERVER_CORE, LOAD_CORE):
            pin(cluster_pids(base / "cluster"), core)
            for servers_of, urls in (("one server", [pg_a]), ("two servers", [pg_a, pg_b])):
                for scenario, run in scenarios.items():
                    results["scenarios"][scenario][f"PostgreSQL, {servers_of}, database on core {core}"] = \
                        with_cpu(lambda: run(urls, pg_token), parts)
    finally:
        for server in servers:
            server.stop()
        if url is not None:
            subprocess.run(["scripts/postgres", "stop", str(base / "cluster")], check=True)
        shutil.rmtree(base)
    results["load_after"] = os.getloadavg()
    results["run_s"] = time.monotonic() - started
    (OUT / "postgres.json").write_text(json.dumps(results, indent=2))
    write_report(results)
    print((OUT / "postgres.md").read_text())


def verdict(ok):
    return "met" if ok else "MISSED"


def write_report(r):
    get, create = r["scenarios"]["get user by id"], r["scenarios"]["create user (durable)"]
    lines = [
        f"# PostgreSQL engine vs sled ({r['date']})", "",
        f"{r['cpu']}, {r['cores']} cores. Pinned: every privx-mock server on core {r['server_core']}, "
        f"oha and wrk on core {r['load_core']}, the PostgreSQL cluster (postmaster and backends) as each row says. "
        f"{r['connections']} connections (two servers: 16 each), {r['seconds']} s a run, {r['users']} users in "
        f"each store. Load average before {r['load_before'][0]:.2f}, after {r['load_after'][0]:.2f}; the run "
        f"took {r['run_s']:.0f} s.", "",
        "| scenario | engine | req/s | p50 ms | p99 ms | vs sled | server CPU us/req | database CPU us/req "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, rows in r["scenarios"].items():
        for engine, m in rows.items():
            lines.append(f"| {scenario} | {engine} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} "
                         f"| {m['rps'] / rows['sled']['rps']:.0%} | {m['server_cpu_us']:.0f} "
                         f"| {m['database_cpu_us']:.0f} | {m['errors']} |")
    lines += ["", "| target | database on | measured | verdict |", "|---|---|---|---|"]
    for core in (r["server_core"], r["load_core"]):
        one = f"PostgreSQL, one server, database on core {core}"
        ratio, rate = get[one]["rps"] / get["sled"]["rps"], create[one]["rps"]
        lines += [f"| get user, one PostgreSQL server >= {GET_TARGET:.0%} of sled | core {core} | {ratio:.0%} "
                  f"| {verdict(ratio >= GET_TARGET)} |",
                  f"| durable creates, one PostgreSQL server >= {CREATE_TARGET}/s | core {core} | {rate:.0f}/s "
                  f"({rate / CREATE_TARGET:.0%} of the target) | {verdict(rate >= CREATE_TARGET)} |"]
    (OUT / "postgres.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
