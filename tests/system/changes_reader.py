"""A changes-feed consumer run as its own process by test_changes.py (so the test can kill -9 it):
follows GET /api/changes?feed=continuous and appends each change to a file as one line
"<cursor> <collection> <id> <stamp> <deleted>\\n". The file is its only state: on start it drops a
torn last line and resumes from the cursor of the last whole one, so a kill at any point neither
loses nor repeats a change.

usage: changes_reader.py PORT DATABASE APIKEY OUTFILE"""

import http.client
import json
import os
import sys


def last_cursor(path):
    """The cursor of the last whole line, after cutting off a torn one."""
    if not os.path.exists(path):
        return "0"
    with open(path, "rb+") as f:
        data = f.read()
        keep = data[:data.rfind(b"\n") + 1]
        if len(keep) != len(data):
            f.truncate(len(keep))
    lines = keep.splitlines()
    return lines[-1].split(b" ")[0].decode() if lines else "0"


def main():
    port, db, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    since = last_cursor(out)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/changes?feed=continuous&heartbeat=200&since={since}",
                 headers={"Database": db, "ApiKey": key})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.stderr.write(f"changes feed answered {resp.status}: {resp.read()[:400]!r}\n")
        return 2
    with open(out, "ab", buffering=0) as f:
        while True:
            line = resp.readline()
            if not line:
                return 0
            if not line.strip():
                continue  # a heartbeat
            ch = json.loads(line)
            if "Error" in ch:
                sys.stderr.write(f"feed ended: {ch}\n")
                return 3
            f.write(f"{ch['Cursor']} {ch['Collection']} {ch['Id']} {ch['Stamp']} "
                    f"{int(ch['Deleted'])}\n".encode())


if __name__ == "__main__":
    sys.exit(main())
