# Shell shared by the benchmark scripts (source it; needs $WORK and $NGINX).

# An unused TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_nginx ROOT PROBE...: serves ROOT on 127.0.0.1:<free port> with a
# private nginx in $WORK/nginx, stopped when the script exits, and waits
# until the first PROBE (a path under ROOT) can be fetched; every PROBE must
# be fetchable, so a permissions problem shows up here and not mid-run.
# Sets URL (ending in /) and NGINX_PID.
NGINX_PID=
stop_nginx() {
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  fi
}
start_nginx() {
  local root=$1 dir=$WORK/nginx port ok=0 probe
  trap stop_nginx EXIT
  trap 'exit 130' INT TERM
  rm -rf "$dir"; mkdir -p "$dir/logs" "$dir/tmp"
  port=$(free_port)
  # master_process off: a single process that keeps our uid, so the worker
  # can read the repository wherever $WORK is (no drop to "nobody").
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type application/octet-stream;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $root;
    autoindex on;
  }
}
CONF
  "$NGINX" -p "$dir/" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    >"$dir/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  URL=http://127.0.0.1:$port/
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$URL$2" 2>/dev/null; then ok=1; break; fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ $ok != 1 ]; then
    echo "nginx did not come up on $URL" >&2
    cat "$dir/logs/error.log" "$dir/logs/stdout.log" >&2 2>/dev/null || true
    exit 1
  fi
  for probe in "${@:2}"; do
    curl -fsS -o /dev/null "$URL$probe" || { echo "nginx cannot serve $probe" >&2; exit 1; }
  done
  echo "== serving $root at $URL (nginx pid $NGINX_PID)"
}
