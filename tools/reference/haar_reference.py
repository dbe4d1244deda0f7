"""OpenCV's own Haar detections on a few LFW images, for recog's Haar cascade test
(`haar_matches_opencv`). Needs: pip install "opencv-python-headless<5" (OpenCV 5 moved the cascades out).

    python3 haar_reference.py ../../../shared > ../../crates/recog/tests/fixtures/haar_reference.json
"""
import json
import sys

import cv2

home = sys.argv[1]
cascade = cv2.CascadeClassifier(f"{home}/models/opencv/haarcascade_frontalface_default.xml")
images = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "George_W_Bush/George_W_Bush_0001.jpg",
          "Serena_Williams/Serena_Williams_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg",
          "Jennifer_Aniston/Jennifer_Aniston_0001.jpg", "Tony_Blair/Tony_Blair_0001.jpg"]
out = []
for rel in images:
    img = cv2.imread(f"{home}/data/lfw/images/{rel}")
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    # The notebook's call.
    faces = cascade.detectMultiScale(gray, 1.3, 5)
    out.append({"image": rel, "boxes": [[int(v) for v in f] for f in faces]})
print(json.dumps({"opencv": cv2.__version__, "scale_factor": 1.3, "min_neighbors": 5, "detections": out}, indent=1))
