#!/usr/bin/python3
"""Verifies every DKIM-Signature of some messages with Debian's python3-dkim (dkimpy), without DNS.

Run as /usr/bin/python3 (the interpreter python3-dkim is installed for). Input on stdin, one JSON object:
  {"records": {"<selector>._domainkey.<domain>": "v=DKIM1; k=...; p=..."},
   "messages": ["<base64 of a raw message>", ...]}
Output on stdout, one JSON object, one result per message in order:
  {"results": [{"verify": <dkim.verify(message, dnsfunc=...): the first signature>,
                "signatures": [{"index": 0, "ok": true|false, "error": null|"...",
                                "d": "...", "s": "...", "a": "..."}, ...]}, ...]}
The DNS function answers from "records" only; any other name is unknown (as NXDOMAIN), so that signature
fails.
"""
import base64
import json
import sys

import dkim


def verify_message(message, dnsfunc):
    count = sum(1 for name, _ in dkim.DKIM(message).headers if name.lower() == b"dkim-signature")
    signatures = []
    for index in range(count):
        checker = dkim.DKIM(message)
        entry = {"index": index, "ok": False, "error": None}
        try:
            entry["ok"] = bool(checker.verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException as err:
            entry["error"] = "%s: %s" % (type(err).__name__, err)
        fields = getattr(checker, "signature_fields", None) or {}
        for tag in ("d", "s", "a"):
            value = fields.get(tag.encode("ascii"))
            entry[tag] = None if value is None else value.decode("ascii", "replace")
        signatures.append(entry)
    try:
        first = bool(dkim.verify(message, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        first = False
    return {"verify": first, "signatures": signatures}


def main():
    request = json.load(sys.stdin)
    records = {name.lower().rstrip("."): value for name, value in request["records"].items()}

    def dnsfunc(name, timeout=5):
        text = name.decode("ascii") if isinstance(name, bytes) else name
        record = records.get(text.lower().rstrip("."))
        return None if record is None else record.encode("ascii")

    results = [verify_message(base64.b64decode(m), dnsfunc) for m in request["messages"]]
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
