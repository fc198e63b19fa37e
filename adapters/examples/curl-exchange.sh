#!/usr/bin/env bash
# One signed exchange with the Crossroads hub using only curl, openssl, base64 and standard shell tools:
# sign the request (RFC 9421, Ed25519 via `openssl pkeyutl -sign -rawin`) with a Content-Digest (RFC 9530),
# send it, and verify the hub's signed answer, including its binding to this request (`;req`).
#
#   curl-exchange.sh WORLD_JSON REQUESTER SUBJECT CATEGORY PURPOSE
#       reads the hub's URL, key id and public key and REQUESTER's key id and key file from a world.json
#       (written by `crossroads demo --serve`), with jq, or with python3 where jq is not installed.
#   HUB_URL=... HUB_KEY_ID=... HUB_PUBLIC_KEY_FILE=... KEY_ID=... KEY_FILE=... \
#   curl-exchange.sh - REQUESTER SUBJECT CATEGORY PURPOSE
#       the same without a world file.
#   PARAMS='{"year":2025}' adds params; REVIEW=<id> repeats an approved grey-zone exchange.
#   SEALING_KEY_FILE=... SEALING_KEY_ID=... name REQUESTER's X25519 key (PKCS#8 PEM) that opens a sealed
#       answer; by default its sealing_key_path and sealing_key_id in WORLD_JSON.
#
# Prints the hub's JSON answer on stdout and `HTTP <status>, signature verified` on stderr. A sealed answer
# (PROTOCOL.md, "Sealed answers") is checked and opened as well: the holder's JWS signature with openssl and the
# hub-given holder_key, its exchange and recipient, then HPKE (RFC 9180) with python3 and pyhpke, as openssl
# 3.0's command line has no HPKE. Its record is a second stdout line, `{"opened":{...}}`, and stderr adds
# `sealed answer verified and opened`. Exit status: 0 delivered (200) or pending review (202),
# 3 a verified refusal (problem), 1 anything unverified (a sealed answer that fails a check included).
set -euo pipefail

if [[ $# -ne 5 ]]; then
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 1
fi
world=$1 requester=$2 subject=$3 category=$4 purpose=$5
for tool in curl openssl base64; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

# One value from world.json: `hub KEY` or `principal ID KEY` (agencies and operators alike).
world_value() {
    if command -v jq >/dev/null; then
        if [[ $1 == hub ]]; then
            jq -er --arg k "$2" '.hub[$k]' "$world"
        else
            jq -er --arg id "$2" --arg k "$3" '(.agencies + .operators)[] | select(.id == $id) | .[$k]' "$world"
        fi
    else
        python3 -c 'import json, sys
w = json.load(open(sys.argv[1]))
if sys.argv[2] == "hub":
    print(w["hub"][sys.argv[3]])
else:
    print(next(p for p in w["agencies"] + w["operators"] if p["id"] == sys.argv[3])[sys.argv[4]])' "$world" "$@"
    fi
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if [[ $world != - ]]; then
    HUB_URL=$(world_value hub url)
    HUB_KEY_ID=$(world_value hub key_id)
    world_value hub public_key_pem >"$scratch/hub.pub.pem"
    HUB_PUBLIC_KEY_FILE=$scratch/hub.pub.pem
    KEY_ID=$(world_value principal "$requester" key_id)
    KEY_FILE=$(dirname "$world")/$(world_value principal "$requester" private_key_path)
fi
: "${HUB_URL:?} ${HUB_KEY_ID:?} ${HUB_PUBLIC_KEY_FILE:?} ${KEY_ID:?} ${KEY_FILE:?}"

url=${HUB_URL%/}/v1/exchanges
body="{\"subject\":\"$subject\",\"category\":\"$category\",\"purpose\":\"$purpose\""
[[ -n ${PARAMS:-} ]] && body+=",\"params\":$PARAMS"
[[ -n ${REVIEW:-} ]] && body+=",\"review\":\"$REVIEW\""
body+="}"
printf '%s' "$body" >"$scratch/body"

sha256_digest() { # RFC 9530 Content-Digest of a file
    printf 'sha-256=:%s:' "$(openssl dgst -sha256 -binary "$1" | base64 | tr -d '\n')"
}
digest=$(sha256_digest "$scratch/body")
created=$(date +%s)
nonce=$(openssl rand -base64 18 | tr '+/' '-_' | tr -d '=\n')
params="(\"@method\" \"@target-uri\" \"content-digest\" \"content-type\");created=$created;keyid=\"$KEY_ID\";nonce=\"$nonce\";alg=\"ed25519\""

# The signature base (RFC 9421 §2.5): one line per covered component, then @signature-params, no final newline.
printf '"@method": POST\n"@target-uri": %s\n"content-digest": %s\n"content-type": application/json\n"@signature-params": %s' \
    "$url" "$digest" "$params" >"$scratch/request-base"
signature=$(openssl pkeyutl -sign -inkey "$KEY_FILE" -rawin -in "$scratch/request-base" | base64 | tr -d '\n')

curl -sS -o "$scratch/answer" -D "$scratch/headers" -X POST "$url" \
    -H "Content-Type: application/json" \
    -H "Content-Digest: $digest" \
    -H "Signature-Input: sig1=$params" \
    -H "Signature: sig1=:$signature:" \
    --data-binary "@$scratch/body"

fail() { echo "not verified: $1" >&2; cat "$scratch/answer" >&2; echo >&2; exit 1; }
header() { # a response header's value, trimmed (the last one, should there be an interim response)
    { grep -i "^$1:" "$scratch/headers" || true; } | tail -n 1 | cut -d: -f2- | tr -d '\r' |
        sed 's/^[[:space:]]*//; s/[[:space:]]*$//'
}
status=$(grep '^HTTP/' "$scratch/headers" | tail -n 1 | cut -d' ' -f2)
answer_input=$(header signature-input)
answer_signature=$(header signature)
[[ -n $answer_input && -n $answer_signature ]] || fail "the answer is not signed"

# The hub's one signature: label=(components);params. Its key must be the hub's; its coverage must
# include the answer's status, digest and type, and bind it to this request's method and target. An answer
# that delivers or opens a review binds it to this request's digest too; a refusal does only once the hub has
# authenticated the request (a 401, for one, cannot vouch for a body it did not accept), and is checked
# against the digest whenever it covers it.
label=${answer_input%%=*}
answer_params=${answer_input#*=}
[[ $answer_params == *"keyid=\"$HUB_KEY_ID\""* ]] || fail "signed by another key than $HUB_KEY_ID"
components=${answer_params%%)*}
components=${components#(}
needed=('"@status"' '"content-digest"' '"content-type"' '"@method";req' '"@target-uri";req')
[[ $status == 200 || $status == 202 ]] && needed+=('"content-digest";req')
for component in "${needed[@]}"; do
    [[ " $components " == *" $component "* ]] || fail "the signature does not cover $component"
done
[[ $(header content-digest) == "$(sha256_digest "$scratch/answer")" ]] || fail "the body does not match its Content-Digest"

: >"$scratch/answer-base"
for component in $components; do
    case $component in
        '"@status"') value=$status ;;
        '"content-digest"') value=$(header content-digest) ;;
        '"content-type"') value=$(header content-type) ;;
        '"@method";req') value=POST ;;
        '"@target-uri";req') value=$url ;;
        '"content-digest";req') value=$digest ;;
        *) fail "cannot rebuild component $component" ;;
    esac
    printf '%s: %s\n' "$component" "$value" >>"$scratch/answer-base"
done
printf '"@signature-params": %s' "$answer_params" >>"$scratch/answer-base"

encoded=${answer_signature#"$label"=:}
printf '%s' "${encoded%:}" | base64 -d >"$scratch/answer-signature"
openssl pkeyutl -verify -pubin -inkey "$HUB_PUBLIC_KEY_FILE" -rawin -in "$scratch/answer-base" \
    -sigfile "$scratch/answer-signature" >/dev/null 2>&1 || fail "the hub's signature does not verify"

echo "HTTP $status, signature verified" >&2

# One value of a JSON file by its path (`.a.b`): a string as it is, anything else as compact JSON (`null` when
# absent); with jq, or with python3 where jq is not installed.
json_value() {
    if command -v jq >/dev/null; then
        jq -r "$2 | if type == \"string\" then . else tojson end" "$1"
    else
        python3 -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split(".")[1:]:
    value = value.get(key) if isinstance(value, dict) else None
print(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))' "$1" "$2"
    fi
}

b64url_decode() { # unpadded base64url (RFC 7515 §2) to stdout, or status 1
    local text=$1
    [[ $text =~ ^[A-Za-z0-9_-]*$ && $((${#text} % 4)) -ne 1 ]] || return 1
    text=$(printf '%s' "$text" | tr '_-' '/+')
    while ((${#text} % 4)); do text+='='; done
    printf '%s' "$text" | base64 -d 2>/dev/null
}

# A sealed answer (PROTOCOL.md, "Sealed answers"): `sealed` is the holder's JWS (RFC 7515, flattened JSON,
# EdDSA) over {"exchange", "fields", "recipient", "sealed": {"enc", "ct"}}, signed with the key the hub gives as
# `holder_key`; its data is HPKE-sealed (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
# ChaCha20-Poly1305, info `crossroads/v1 sealed`, aad the exchange id) to the requester's X25519 key. Checked
# here: the signature, the exchange, the recipient, that it opens with our key, and that it holds no field beyond
# its list. openssl 3.0's command line has no HPKE: python3 with pyhpke opens it.
open_sealed() {
    command -v python3 >/dev/null || fail "a sealed answer needs python3 with pyhpke to open it"
    if [[ -z ${SEALING_KEY_ID:-} && $world != - ]]; then
        SEALING_KEY_ID=$(world_value principal "$requester" sealing_key_id) ||
            fail "$world names no sealing_key_id for $requester"
    fi
    if [[ -z ${SEALING_KEY_FILE:-} && $world != - ]]; then
        SEALING_KEY_FILE=$(dirname "$world")/$(world_value principal "$requester" sealing_key_path) ||
            fail "$world names no sealing_key_path for $requester"
    fi
    [[ -n ${SEALING_KEY_ID:-} && -n ${SEALING_KEY_FILE:-} ]] ||
        fail "a sealed answer: SEALING_KEY_FILE and SEALING_KEY_ID must name $requester's X25519 key"

    exchange=$(json_value "$scratch/answer" .exchange)
    holder_key_id=$(json_value "$scratch/answer" .holder_key.key_id)
    json_value "$scratch/answer" .holder_key.public_key_pem >"$scratch/holder.pub.pem"
    protected=$(json_value "$scratch/answer" .sealed.protected)
    payload=$(json_value "$scratch/answer" .sealed.payload)
    b64url_decode "$protected" >"$scratch/sealed-header" || fail "the sealed answer's protected header is not base64url"
    b64url_decode "$payload" >"$scratch/sealed-payload" || fail "the sealed answer's payload is not base64url"
    b64url_decode "$(json_value "$scratch/answer" .sealed.signature)" >"$scratch/sealed-signature" ||
        fail "the sealed answer's signature is not base64url"
    alg=$(json_value "$scratch/sealed-header" .alg 2>/dev/null) || fail "the sealed answer's header is not JSON"
    kid=$(json_value "$scratch/sealed-header" .kid)
    [[ $alg == EdDSA ]] || fail "the sealed answer is signed with alg $alg, not EdDSA"
    [[ $kid == "$holder_key_id" ]] || fail "the sealed answer is signed with key $kid, not the holder's $holder_key_id"

    # The JWS signing input: the two base64url strings as sent, joined by a dot.
    printf '%s.%s' "$protected" "$payload" >"$scratch/sealed-input"
    openssl pkeyutl -verify -pubin -inkey "$scratch/holder.pub.pem" -rawin -in "$scratch/sealed-input" \
        -sigfile "$scratch/sealed-signature" >/dev/null 2>&1 ||
        fail "the holder's signature on the sealed answer does not verify"

    sealed_exchange=$(json_value "$scratch/sealed-payload" .exchange 2>/dev/null) ||
        fail "the sealed answer's payload is not JSON"
    [[ $sealed_exchange == "$exchange" ]] || fail "the sealed answer is for exchange $sealed_exchange, not $exchange"
    recipient=$(json_value "$scratch/sealed-payload" .recipient)
    [[ $recipient == "$SEALING_KEY_ID" ]] || fail "the sealed answer is sealed to key $recipient, not $SEALING_KEY_ID"

    python3 -c 'import base64, json, sys
try:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
except ImportError as error:
    sys.exit(f"a sealed answer needs python3 with pyhpke to open it ({error})")
key_file, exchange, fields, enc, ct = sys.argv[1:]
fields = json.loads(fields)
suite = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
try:
    key = KEMKey.from_pyca_cryptography_key(load_pem_private_key(open(key_file, "rb").read(), password=None))
    enc, ct = (base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) for text in (enc, ct))
    opening = suite.create_recipient_context(enc, key, info=b"crossroads/v1 sealed")
    record = json.loads(opening.open(ct, aad=exchange.encode()))
except Exception as error:
    sys.exit(f"the sealed answer does not open with {key_file}: {type(error).__name__} {error}")
if not isinstance(record, dict):
    sys.exit("the sealed answer does not seal a JSON object")
if fields is not None and set(record) - set(fields):
    sys.exit(f"the sealed answer holds fields beyond its list {fields}: {sorted(set(record) - set(fields))}")
print(json.dumps(record, separators=(",", ":")))' \
        "$SEALING_KEY_FILE" "$exchange" "$(json_value "$scratch/sealed-payload" .fields)" \
        "$(json_value "$scratch/sealed-payload" .sealed.enc)" "$(json_value "$scratch/sealed-payload" .sealed.ct)" \
        >"$scratch/opened" 2>"$scratch/opening-error" || fail "$(tail -n 1 "$scratch/opening-error")"
}

# grep first: a plain answer needs neither jq nor python3, as before sealed answers.
sealed=false
if [[ $status == 200 ]] && grep -q '"sealed"' "$scratch/answer" &&
    [[ $(json_value "$scratch/answer" .sealed) != null ]]; then
    open_sealed
    sealed=true
fi
cat "$scratch/answer"
echo
if $sealed; then
    printf '{"opened":%s}\n' "$(cat "$scratch/opened")"
    echo "sealed answer verified and opened" >&2
fi
[[ $status == 200 || $status == 202 ]] || exit 3
