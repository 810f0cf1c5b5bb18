#!/usr/bin/env python3
"""Read the edge's /api/v1/videos JSON on stdin.

catalog.py titles   -> one title per line (videos not failed)
catalog.py progress -> a one-line summary, then "busy" or "done"
"""
import json
import sys

videos = json.load(sys.stdin)["videos"]
if sys.argv[1] == "titles":
    for v in videos:
        if v["status"] != "failed":
            print(v["title"])
else:
    print(" ".join("{}={}({:.0f}%)".format(v["title"], v["status"], v["progress_percent"]) for v in videos))
    print("busy" if any(v["status"] in ("queued", "processing") for v in videos) else "done")
