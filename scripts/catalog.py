#!/usr/bin/env python3
"""Read the edge's /api/v1/videos JSON on stdin.

catalog.py titles      -> one title per line (videos not failed)
catalog.py progress    -> a one-line summary, then "busy" or "done"
catalog.py id TITLE    -> the id of the ready video titled TITLE (VOD, not a channel)
catalog.py running TITLE (on /api/v1/channels) -> exit 0 when a channel
                          titled TITLE is queued, processing or live
"""
import json
import sys

doc = json.load(sys.stdin)
if sys.argv[1] == "running":
    live = ("queued", "processing", "live")
    sys.exit(0 if any(c["title"] == sys.argv[2] and c["status"] in live for c in doc["channels"]) else 1)
videos = doc["videos"]
if sys.argv[1] == "id":
    for v in videos:
        if v["title"] == sys.argv[2] and v["status"] == "ready" and not v.get("live"):
            print(v["id"])
            break
elif sys.argv[1] == "titles":
    for v in videos:
        if v["status"] != "failed":
            print(v["title"])
else:
    print(" ".join("{}={}({:.0f}%)".format(v["title"], v["status"], v["progress_percent"]) for v in videos))
    print("busy" if any(v["status"] in ("queued", "processing") for v in videos) else "done")
