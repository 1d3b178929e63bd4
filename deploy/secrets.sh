# Sourced by stack.sh, demo.sh, test.sh and the load scripts: the local stack's
# secrets, made once per data directory and kept in $DATA/secrets (mode 700):
#
#   clickhouse.env   passwords of ClickHouse's callmatrix_writer, callmatrix_reader (the
#                    api) and callmatrix_analyst (analysts); the retention hash key
#   tokens.json      API tokens: one admin token, one per account of the sample
#                    integrations (ingest's and the api's auth.tokens_file)
#
# Nothing here is printed: scripts read the files. Production takes its secrets from
# its own secret store (docs/security.md).

cm_random_secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }

# cm_secrets DATA [INTEGRATIONS_FILE]: makes what is missing, then exports
#   CM_CLICKHOUSE_WRITER_PASSWORD, CM_CLICKHOUSE_READER_PASSWORD,
#   CM_CLICKHOUSE_ANALYST_PASSWORD, CM_TOKENS_FILE, CM_ADMIN_TOKEN
cm_secrets() {
  local data="$1" integrations="${2:-}"
  local dir="$data/secrets"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [ ! -s "$dir/clickhouse.env" ]; then
    (umask 077 && printf 'CM_CLICKHOUSE_WRITER_PASSWORD=%s\nCM_CLICKHOUSE_READER_PASSWORD=%s\n' \
      "$(cm_random_secret)" "$(cm_random_secret)" >"$dir/clickhouse.env")
  fi
  # Data directories made before the analysts had a user of their own get one.
  if ! grep -q '^CM_CLICKHOUSE_ANALYST_PASSWORD=' "$dir/clickhouse.env"; then
    (umask 077 && printf 'CM_CLICKHOUSE_ANALYST_PASSWORD=%s\n' "$(cm_random_secret)" >>"$dir/clickhouse.env")
  fi
  # The key of callers' number hashes (retention, docs/privacy.md).
  if ! grep -q '^CM_RETENTION_HASH_KEY=' "$dir/clickhouse.env"; then
    (umask 077 && printf 'CM_RETENTION_HASH_KEY=%s\n' "$(cm_random_secret)" >>"$dir/clickhouse.env")
  fi
  # shellcheck disable=SC1091
  . "$dir/clickhouse.env"
  export CM_CLICKHOUSE_WRITER_PASSWORD CM_CLICKHOUSE_READER_PASSWORD CM_CLICKHOUSE_ANALYST_PASSWORD CM_RETENTION_HASH_KEY
  if [ ! -s "$dir/tokens.json" ]; then
    (umask 077 && python3 - "$dir/tokens.json" "$integrations" <<'PY'
import json, secrets, sys
path, integrations = sys.argv[1], sys.argv[2]
accounts = set()
if integrations:
    with open(integrations) as f:
        data = json.load(f)
    for item in (data if isinstance(data, list) else data.get("integrations", [])):
        accounts.add(item["account"])
tokens = {
    "admin": ["adm_" + secrets.token_urlsafe(30)],
    "accounts": {a: ["acc_" + secrets.token_urlsafe(30)] for a in sorted(accounts)},
}
with open(path, "w") as f:
    json.dump(tokens, f, indent=2)
PY
    )
  fi
  CM_TOKENS_FILE="$dir/tokens.json"
  CM_ADMIN_TOKEN="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"][0])' "$CM_TOKENS_FILE")"
  export CM_TOKENS_FILE CM_ADMIN_TOKEN
}

# cm_clickhouse_users OUT: renders deploy/clickhouse/users.xml.template into OUT with
# the hashes of the passwords cm_secrets exported (ClickHouse stores only hashes).
cm_clickhouse_users() {
  local out="$1" root writer reader analyst
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  writer="$(printf '%s' "$CM_CLICKHOUSE_WRITER_PASSWORD" | sha256sum | cut -d' ' -f1)"
  reader="$(printf '%s' "$CM_CLICKHOUSE_READER_PASSWORD" | sha256sum | cut -d' ' -f1)"
  analyst="$(printf '%s' "$CM_CLICKHOUSE_ANALYST_PASSWORD" | sha256sum | cut -d' ' -f1)"
  (umask 077 && sed -e "s|@WRITER_SHA256@|$writer|" -e "s|@READER_SHA256@|$reader|" \
    -e "s|@ANALYST_SHA256@|$analyst|" "$root/deploy/clickhouse/users.xml.template" >"$out")
}

# ch_query SQL [URL-QUERY]: runs SQL as the writer on the stack's ClickHouse ($CH).
ch_query() {
  curl -sS -u "callmatrix_writer:$CM_CLICKHOUSE_WRITER_PASSWORD" "$CH/?${2:-}" --data-binary "$1"
}
