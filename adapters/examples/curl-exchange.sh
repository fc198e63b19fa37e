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
#
# Prints the hub's JSON answer on stdout and `HTTP <status>, signature verified` on stderr. Exit status:
# 0 delivered (200) or pending review (202), 3 a verified refusal (problem), 1 anything unverified.
set -euo pipefail

if [[ $# -ne 5 ]]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
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
cat "$scratch/answer"
echo
[[ $status == 200 || $status == 202 ]] || exit 3
