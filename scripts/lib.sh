# Shared by scripts that test a live server: `start_server ARGS...` builds the binary, starts it
# on 127.0.0.1 (a port the kernel picks) with the example fixtures and known credentials, and
# sets $url and $token (an admin bearer token). The server and its temporary store are removed
# when the calling script exits.

admin_password=script-admin-password
client_id=privx-external # the server's default OAuth client
client_secret=script-client-secret

start_server() {
    cargo build --quiet --bin privx-mock
    work=$(mktemp -d)
    target/debug/privx-mock --bind 127.0.0.1:0 --data-dir "$work/data" \
        --fixtures tests/fixtures/example.json --log-file "$work/server.log" \
        --admin-password "$admin_password" --oauth-client-id "$client_id" --oauth-client-secret "$client_secret" \
        "$@" 2>"$work/stderr" &
    server=$!
    trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT

    # The server prints its address once it listens.
    url=""
    for _ in $(seq 300); do
        url=$(sed -n 's/^privx-mock listening on //p' "$work/stderr")
        [ -n "$url" ] && break
        kill -0 "$server" 2>/dev/null || { cat "$work/stderr"; return 1; }
        sleep 0.1
    done
    [ -n "$url" ] || { echo "the server did not start"; cat "$work/stderr"; return 1; }

    token=$(python3 - "$url" "$client_id" "$client_secret" "$admin_password" <<'PY'
import base64, json, sys, urllib.parse, urllib.request
url, client, secret, password = sys.argv[1:]
body = urllib.parse.urlencode({"grant_type": "password", "username": "admin", "password": password})
request = urllib.request.Request(f"{url}/auth/api/v1/oauth/token", data=body.encode())
basic = base64.b64encode(f"{client}:{secret}".encode()).decode()
request.add_header("Authorization", f"Basic {basic}")
print(json.load(urllib.request.urlopen(request))["access_token"])
PY
)
}
