#!/bin/bash
# Memory of concurrent long-range reports (docs/benchmarks.md, "Reports").
# usage: report_memory.sh JUHE_BINARY DATABASE_URL PORT CREDENTIALS_JSON
# Starts `juhe serve`, sends 8 concurrent 365-day GetDataByStaffCustomer requests of one
# merchant, and prints the server's RSS before, its peak (VmHWM) and after, and the wall
# time. START/END (local yyyy-MM-dd HH:mm:ss) override the range.
BIN=$1; DB=$2; PORT=$3; CREDS=$4
ID=$(sed -E 's/.*"clientId":"([^"]+)".*/\1/' "$CREDS")
SECRET=$(sed -E 's/.*"clientSecret":"([^"]+)".*/\1/' "$CREDS")
JUHE_RATE_LIMIT__PER_SECOND=0 $BIN --database "$DB" serve --listen 127.0.0.1:$PORT 2>/dev/null &
PID=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -s http://127.0.0.1:$PORT/connect/token -d grant_type=client_credentials -d client_id=$ID -d client_secret=$SECRET | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
END=${END:-$(TZ=Asia/Shanghai date "+%Y-%m-%d %H:%M:%S")}
START=${START:-$(TZ=Asia/Shanghai date -d "-365 days" "+%Y-%m-%d %H:%M:%S")}
rss() { grep -E "^$1" /proc/$PID/status | awk '{print $2/1024 " MB"}'; }
echo "before: $(rss VmRSS)"
T0=$(date +%s.%N)
CURLS=()
for i in 1 2 3 4 5 6 7 8; do
  curl -s -o /dev/null -w "%{http_code} %{time_total}s\n" http://127.0.0.1:$PORT/v2/Report/GetDataByStaffCustomer \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"startDate\": \"$START\", \"endDate\": \"$END\", \"show\": 3, \"staffState\": true, \"pageSize\": 100}" &
  CURLS+=($!)
done
wait "${CURLS[@]}"
T1=$(date +%s.%N)
sleep 1
echo "batch: $(echo "$T1 - $T0" | bc) s; peak: $(rss VmHWM); after: $(rss VmRSS)"
kill -TERM $PID; wait $PID
