"""face_recognition 1.3 (dlib 20) beside `recog bench face`, on the same photos, alternating:
the peer for issue 16's "whole face pipeline" figure. Prints faces/s for each and the ratio.

face_recognition's pipeline per photo: `load_image_file` (PIL decode), `face_locations` (dlib's
HOG detector, its default: one upsampling), `face_encodings` (5-point landmarks, alignment and
dlib's ResNet, one jitter). It runs once in one process (as its README shows it) and once in
two worker processes, one photo per task, since recog uses both cores of a 2-core machine.

Outside CI (dlib builds from source: about 15 minutes on 2 cores). Setup, once:
    python3 -m venv /tmp/frvenv && /tmp/frvenv/bin/pip install cmake
    PATH=/tmp/frvenv/bin:$PATH /tmp/frvenv/bin/pip install dlib==20.0.1 face_recognition==1.3.0
Run (the first N photos of LFW in name order, as `recog bench face` takes them):
    /tmp/frvenv/bin/python tools/bench/face_recognition_peer.py \\
        --lfw $RECOG_HOME/data/lfw/images --n 128 --recog target/release/recog --rounds 3
(`--precision f32` or `bf16` passes recog's `--precision`.)
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import tempfile
import time


def photos(lfw, n):
    """The first n photos in (person, file) name order, as recog's `person_images` lists them."""
    out = []
    for person in sorted(os.listdir(lfw)):
        d = os.path.join(lfw, person)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append(os.path.join(d, f))
                if len(out) == n:
                    return out
    return out


def faces_in(path):
    import face_recognition

    img = face_recognition.load_image_file(path)
    locs = face_recognition.face_locations(img)
    return len(face_recognition.face_encodings(img, known_face_locations=locs))


def peer(files, workers):
    """(faces, seconds) for the whole pipeline over files, after one warm-up photo."""
    if workers == 1:
        faces_in(files[0])
        t = time.perf_counter()
        faces = sum(faces_in(f) for f in files)
        return faces, time.perf_counter() - t
    with multiprocessing.Pool(workers) as pool:
        pool.map(faces_in, files[:workers])
        t = time.perf_counter()
        faces = sum(pool.map(faces_in, files, chunksize=1))
        return faces, time.perf_counter() - t


def recog(binary, folder, n, batch, precision):
    extra = ["--precision", precision] if precision else []
    out = subprocess.run(
        [binary, "bench", "face", "--images", folder, "--n", str(n), "--batch", str(batch), "--json"]
        + extra,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # The report is the last JSON object printed.
    return json.loads(out[out.index("{"):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", required=True)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--recog", default="target/release/recog")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", choices=["f32", "bf16"], help="recog's --precision (default: its own)")
    a = ap.parse_args()
    files = photos(a.lfw, a.n)
    with tempfile.TemporaryDirectory() as tmp:
        # The same files for recog, in the same order.
        for i, f in enumerate(files):
            os.symlink(f, os.path.join(tmp, f"{i:05d}_{os.path.basename(f)}"))
        for r in range(a.rounds):
            rep = recog(a.recog, tmp, len(files), a.batch, a.precision)
            f1, s1 = peer(files, 1)
            f2, s2 = peer(files, 2)
            ours = rep["faces_per_s"]
            print(
                f"round {r + 1}: {len(files)} photos | recog ({rep['embed_precision']}) {rep['faces']} faces, "
                f"{ours:.1f} faces/s "
                f"| face_recognition 1 process {f1} faces, {f1 / s1:.2f} faces/s "
                f"(recog {ours / (f1 / s1):.1f}x) | 2 processes {f2 / s2:.2f} faces/s "
                f"(recog {ours / (f2 / s2):.1f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
